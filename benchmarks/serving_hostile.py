"""Attacks on a loopback `dirtypixels serve` while good clients keep asking; prints held / FAILED and the memory.

    python benchmarks/serving_hostile.py [--preset joint_mobilenet_v1_128] [--stalled-grpc 16] [--stalled-rest 8]
        [--message-mb 60] [--read-timeout 10] [--quick]

The model is a release preset (random weights) exported into a temporary base path and served by `dirtypixels serve`
in a subprocess on 127.0.0.1 (gRPC and REST; --read-timeout as given, the other limits at their defaults). Attacks:
- --stalled-grpc calls, each on its own HTTP/2 connection, sending all but the last byte of a --message-mb message
  and stopping (target: DEADLINE_EXCEEDED after --read-timeout, memory freed);
- --stalled-rest uploads declaring a --message-mb body (target: 413 at once, from the signature's largest request)
  and as many declaring the largest allowed body and sending half (target: 408 or 429, never more memory than the
  --max-inflight-mb budget);
- more gRPC calls than --max-calls (target: RESOURCE_EXHAUSTED for the excess), a message cut short by the end of
  its stream, a message that is not a proto (target: INVALID_ARGUMENT at once), a REST body of one row of 15 M
  floats (413 before it is read), `true` as a float (400), version folders named 0010, 99999999999999999999, an
  unreadable one and a symlink loop (target: status still answers, each reported in the log).
Meanwhile 2 gRPC and 2 REST clients send good requests in a loop (target: every one answered). Memory: the server's
resident memory after warm-up (base), its peak (VmHWM) during the attacks, the bound the server states
(base + max_calls x max_message + max_inflight, limits.py) and its resident memory once the attackers are gone.
"""

import argparse
import json
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.events  # noqa: E402
import h2.exceptions  # noqa: E402

PREDICT = "/tensorflow.serving.PredictionService/Predict"
MIB = 2**20


class RawGrpcCall:
    """One gRPC call on its own HTTP/2 connection (h2), sending whatever bytes it is told: partial messages too."""

    def __init__(self, host, port, path=PREDICT, timeout=30):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.stream = self.conn.get_next_available_stream_id()
        headers = [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", f"{host}:{port}")]
        self.conn.send_headers(self.stream, headers + [("content-type", "application/grpc"), ("te", "trailers")])
        self.sock.sendall(self.conn.data_to_send())
        self.headers = {}
        self.closed = False

    def _receive(self, timeout):
        self.sock.settimeout(max(timeout, 0.01))
        data = self.sock.recv(65536)
        if not data:
            self.closed = True
            return
        for event in self.conn.receive_data(data):
            if isinstance(event, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                self.headers.update(dict(event.headers))
            elif isinstance(event, h2.events.DataReceived):
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                self.closed = True
        self.sock.sendall(self.conn.data_to_send())

    def send(self, data, end_stream=False, timeout=60):
        """Send `data` as the flow-control windows allow; returns the bytes sent (fewer if the call was closed)."""
        deadline = time.monotonic() + timeout
        view = memoryview(data)
        while view and not self.closed and time.monotonic() < deadline:
            window = min(self.conn.local_flow_control_window(self.stream), self.conn.max_outbound_frame_size)
            if window <= 0 or "grpc-status" in self.headers:
                self._receive(deadline - time.monotonic())
                continue
            try:
                self.conn.send_data(self.stream, bytes(view[:window]))
            except h2.exceptions.StreamClosedError:
                break
            view = view[window:]
            self.sock.sendall(self.conn.data_to_send())
        if end_stream and not view:
            self.conn.end_stream(self.stream)
            self.sock.sendall(self.conn.data_to_send())
        return len(data) - len(view)

    def status(self, timeout):
        """(grpc-status as an int, grpc-message) once answered within `timeout` s, else None."""
        deadline = time.monotonic() + timeout
        while "grpc-status" not in self.headers and not self.closed and time.monotonic() < deadline:
            try:
                self._receive(deadline - time.monotonic())
            except (TimeoutError, OSError):
                break
        if "grpc-status" not in self.headers:
            return None
        return int(self.headers["grpc-status"]), self.headers.get("grpc-message", "")

    def close(self):
        self.sock.close()


def message_prefix(length):
    """gRPC's 5-byte message header: not compressed, `length` bytes follow."""
    return b"\0" + struct.pack(">I", length)


def start_server(base_path, *flags):
    """`dirtypixels serve` in a subprocess on free loopback ports: (process, gRPC port, REST port)."""
    command = [sys.executable, "-m", "dirtypixels_tf.cli", "serve", base_path, "--model-name", "bench"]
    process = subprocess.Popen(
        command + ["--port", "0", "--rest-port", "0", "--poll-seconds", "0.5", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()
    match = re.search(r"gRPC \S+:(\d+), REST \S+:(\d+);.* at most (\d+) MiB", line)
    if not match:
        process.kill()
        raise RuntimeError(f"the server did not start: {line!r} {process.stderr.read()[-2000:]}")
    log = []
    threading.Thread(target=lambda: log.extend(process.stderr), daemon=True).start()
    return process, int(match[1]), int(match[2]), int(match[3]) * MIB, log


def memory_kb(pid, field):
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak(pid):
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs); False where not allowed."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as file:
            file.write("5")
        return True
    except OSError:
        return False


def rest(port, path, body=None, timeout=60):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def raw_http(port, head, body=b"", timeout=60):
    """Send a request head and (part of) a body; the status of the answer, or None if none came within `timeout`."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head + body)
        try:
            answer = sock.recv(4096)
        except (TimeoutError, ConnectionResetError):
            return None
    return int(answer.split()[1]) if answer else None


class StalledUpload(threading.Thread):
    """A REST upload that declares `length` bytes, sends `sent` of them and stops; `.status` is the HTTP status of
    the answer (None: none within `timeout` s, or the server closed without one)."""

    def __init__(self, rest_port, length, sent, timeout, model="bench"):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", rest_port), timeout=timeout)
        self.head = f"POST /v1/models/{model}:predict HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n"
        self.body = b"[" + b"0," * ((sent - 1) // 2)
        self.status = None
        self.start()

    def run(self):
        try:
            self.sock.sendall(self.head.encode() + self.body)  # blocks while the server waits for budget
        except OSError:
            pass
        try:
            answer = self.sock.recv(4096)
            self.status = int(answer.split()[1]) if answer else None
        except OSError:
            pass

    def close(self):
        self.sock.close()


def largest_body(rest_port, model="bench"):
    """The largest :predict body the server accepts, read from its 413 answer to a body declared far larger."""
    with socket.create_connection(("127.0.0.1", rest_port), timeout=30) as sock:
        head = f"POST /v1/models/{model}:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1099511627776\r\n\r\n"
        sock.sendall(head.encode())
        answer = sock.recv(4096).decode()
    return int(re.search(r"maximum of (\d+) bytes", answer)[1])


class Report:
    def __init__(self):
        self.failed = 0

    def line(self, held, text):
        self.failed += not held
        print(f"{'held  ' if held else 'FAILED'}  {text}", flush=True)


def good_clients(grpc_port, rest_port, frames, stop, counts):
    """2 gRPC and 2 REST threads sending good batch-1 requests until `stop`; counts [answered, lost, {why}]."""
    from dirtypixels_tf.serving.client import PredictionClient

    one = {key: value[:1] for key, value in frames.items()}
    body = json.dumps({"inputs": {key: value.tolist() for key, value in one.items()}}).encode()

    def grpc_loop():
        with PredictionClient(f"127.0.0.1:{grpc_port}", timeout=60) as client:
            while not stop.is_set():
                try:
                    client.predict(one["raw"], one["alpha"], one["sigma"], model="bench")
                    counts[0] += 1
                except Exception as error:  # counted, not raised: the report says how many were lost, and why
                    counts[1] += 1
                    counts[2].add(f"gRPC {str(error)[:160]}")

    def rest_loop():
        while not stop.is_set():
            status, answer = rest(rest_port, "/v1/models/bench:predict", body)
            counts[0 if status == 200 else 1] += 1
            if status != 200:
                counts[2].add(f"REST {status} {str(answer)[:160]}")

    threads = [threading.Thread(target=loop) for loop in (grpc_loop, grpc_loop, rest_loop, rest_loop)]
    for thread in threads:
        thread.start()
    return threads


def attack(args, process, grpc_port, rest_port, bound, log, frames, base_path, report):
    base_kb = memory_kb(process.pid, "VmRSS")
    exact_peak = reset_peak(process.pid)
    stop, counts = threading.Event(), [0, 0, set()]
    clients = good_clients(grpc_port, rest_port, frames, stop, counts)
    size = int(args.message_mb * MIB)
    calls, uploads = [], []
    try:
        start = time.monotonic()
        for _ in range(args.stalled_grpc):
            call = RawGrpcCall("127.0.0.1", grpc_port)
            call.send(message_prefix(size) + bytes(size - 1), timeout=args.read_timeout)
            calls.append(call)
        head = b"POST /v1/models/bench:predict HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
        answered = [raw_http(rest_port, head % size, timeout=5) for _ in range(args.stalled_rest)]
        report.line(
            all(code == 413 for code in answered),
            f"{args.stalled_rest} REST uploads declaring {args.message_mb:g} MiB: answered {sorted(set(answered))} "
            f"at once (over the signature's largest request)",
        )
        largest = largest_body(rest_port)
        uploads = [
            StalledUpload(rest_port, largest, largest // 2, args.read_timeout + 20) for _ in range(args.stalled_rest)
        ]
        peak_kb = memory_kb(process.pid, "VmRSS")
        statuses = [call.status(args.read_timeout + 20) for call in calls]
        waited = time.monotonic() - start
        report.line(
            all(s is not None and s[0] == 4 for s in statuses),
            f"{args.stalled_grpc} gRPC calls stalled 1 byte short of {args.message_mb:g} MiB: "
            f"{sorted({s[0] if s else None for s in statuses}, key=str)} (4 = DEADLINE_EXCEEDED) within {waited:.1f} s",
        )
        for upload in uploads:
            upload.join()
        rest_codes = [upload.status for upload in uploads]
        report.line(
            all(code in (408, 429) for code in rest_codes),
            f"{args.stalled_rest} REST uploads of the largest allowed body ({largest / MIB:.1f} MiB) stalled half "
            f"way: answered {sorted(set(rest_codes), key=str)}",
        )
        peak_kb = max(peak_kb, memory_kb(process.pid, "VmHWM") if exact_peak else 0)
    finally:
        for call in calls:
            call.close()
        for upload in uploads:
            upload.close()
        stop.set()
        for thread in clients:
            thread.join()
    report.line(
        counts[1] == 0,
        f"good clients meanwhile: {counts[0]} answered, {counts[1]} lost {sorted(counts[2])[:3] if counts[2] else ''}",
    )

    over = [RawGrpcCall("127.0.0.1", grpc_port) for _ in range(args.max_calls + 4)]
    excess = [call.status(2) for call in over]
    report.line(
        sum(1 for s in excess if s and s[0] == 8) >= 4,
        f"{len(over)} open calls against --max-calls {args.max_calls}: "
        f"{sum(1 for s in excess if s and s[0] == 8)} RESOURCE_EXHAUSTED at once",
    )
    for call in over:
        call.close()

    call = RawGrpcCall("127.0.0.1", grpc_port)
    call.send(message_prefix(1000) + bytes(10), end_stream=True)
    status = call.status(5)
    report.line(status is not None and status[0] == 3, f"a message declaring 1000 bytes, cut at 10: {status}")
    call.close()
    call = RawGrpcCall("127.0.0.1", grpc_port)
    call.send(message_prefix(6) + b"\xff" * 6, end_stream=True)
    status = call.status(5)
    report.line(status is not None and status[0] == 3, f"a message that is not a PredictRequest: {status}")
    call.close()

    begin = time.monotonic()
    body_head = head % (15_000_000 * 4)
    code = raw_http(rest_port, body_head, b"[[" + b"0.1," * 1000, timeout=10)
    report.line(code == 413, f"REST one row of 15 M floats (57 MiB): {code} in {time.monotonic() - begin:.2f} s")
    one = {key: value[:1].tolist() for key, value in frames.items()}
    one["alpha"] = [True]
    code, answer = rest(rest_port, "/v1/models/bench:predict", json.dumps({"inputs": one}).encode())
    report.line(code == 400 and "boolean" in answer.get("error", ""), f"REST `true` as a float: {code}")

    for name in ("0010", "99999999999999999999", "7"):
        os.makedirs(os.path.join(base_path, name), exist_ok=True)
    os.chmod(os.path.join(base_path, "7"), 0)
    os.symlink("6", os.path.join(base_path, "6"))
    time.sleep(2.0)
    code, document = rest(rest_port, "/v1/models/bench")
    versions = {status["version"]: status["state"] for status in document.get("model_version_status", [])}
    logged = "".join(log)
    names = ["0010", "99999999999999999999", "6"] + (["7"] if os.geteuid() else [])  # root reads any folder
    reported = [name for name in names if f"folder '{name}'" in logged]
    report.line(
        code == 200 and versions.get("1") == "AVAILABLE" and versions.get("6") == "END" and reported == names,
        f"version folders 0010, 99999999999999999999, unreadable 7{' (root: readable)' if not os.geteuid() else ''}, "
        f"symlink loop 6: status {code} {versions}; logged {reported}",
    )
    os.chmod(os.path.join(base_path, "7"), 0o755)

    time.sleep(1.0)
    after_kb = memory_kb(process.pid, "VmRSS")
    report.line(
        peak_kb * 1024 <= base_kb * 1024 + bound,
        f"memory: base {base_kb / 1024:.0f} MiB, peak {peak_kb / 1024:.0f} MiB "
        f"({'VmHWM' if exact_peak else 'sampled VmRSS'}), bound {(base_kb * 1024 + bound) / MIB:.0f} MiB "
        f"(base + {bound / MIB:.0f}), after the attackers left {after_kb / 1024:.0f} MiB",
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="joint_mobilenet_v1_128")
    parser.add_argument("--stalled-grpc", type=int, default=16)
    parser.add_argument("--stalled-rest", type=int, default=8)
    parser.add_argument("--message-mb", type=float, default=60.0)
    parser.add_argument("--read-timeout", type=float, default=10.0)
    parser.add_argument("--max-calls", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="a smoke run with small messages (the tests run it)")
    args = parser.parse_args()
    flags = ["--read-timeout", f"{args.read_timeout:g}", "--max-calls", str(args.max_calls)]
    if args.quick:
        args.stalled_grpc, args.stalled_rest, args.message_mb, args.read_timeout, args.max_calls = 6, 3, 15, 4, 12
        flags = ["--read-timeout", "4", "--max-calls", "12", "--max-message-mb", "16", "--max-inflight-mb", "256"]
        flags += ["--max-batch", "8"]

    from dirtypixels_tf.export import export_savedmodel
    from dirtypixels_tf.export.tflite import simulated_inputs
    from dirtypixels_tf.models.presets import build_preset, get_preset

    size = get_preset(args.preset).spec.image_size
    frames = simulated_inputs((size, size), 2, profile="3lux", seed=0)
    with tempfile.TemporaryDirectory() as base:
        base_path = os.path.join(base, "bench")
        export_savedmodel(build_preset(args.preset), base_path)
        process, grpc_port, rest_port, bound, log = start_server(base_path, *flags)
        report = Report()
        try:
            from dirtypixels_tf.serving.client import PredictionClient

            with PredictionClient(f"127.0.0.1:{grpc_port}", timeout=60) as client:  # warm up
                client.predict(frames["raw"], frames["alpha"], frames["sigma"], model="bench")
            attack(args, process, grpc_port, rest_port, bound, log, frames, base_path, report)
        finally:
            process.terminate()
            process.wait(timeout=60)
            os.chmod(os.path.join(base_path, "7"), 0o755) if os.path.exists(os.path.join(base_path, "7")) else None
    print(f"{report.failed} attack(s) failed")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
