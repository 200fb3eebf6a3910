"""Server-side batching of Predict requests, with TF Serving's parameters and their meaning.

`dirtypixels serve --enable-batching [--batching-parameters-file FILE]`: FILE is TF Serving's BatchingParameters in
text format (serving/batching_parameters.txt is the one the deployment ships), read and checked by
config.parse_batching_parameters, the checker of the deployment files; without FILE, TF Serving's defaults:
- max_batch_size: the most examples merged into one call (default 1000, as TF Serving);
- batch_timeout_micros: how long a batch that is not full waits for more requests after its first (default 0);
  once it is due it still takes requests until a batch thread is free to run it, as in TF Serving;
- max_enqueued_batches: batches open or waiting for a batch thread; a request that would open one more is refused
  with UNAVAILABLE, as TF Serving's full queue (default 10);
- num_batch_threads: batches computed at once (default: the machine's cores);
- allowed_batch_sizes: if given, a batch is padded (with copies of its last example) up to the smallest allowed size
  that holds it, the last one being max_batch_size (TF Serving's rule); the padding's outputs are dropped;
- pad_variable_length_inputs: false only (requests of different frame sizes are never merged); thread_pool_name is
  refused. Requests are merged only when they name the same loaded version and signature and
their inputs agree in dtype and in every dimension but the batch; the merged outputs are split back per request.
If a merged call fails (one request's values rejected by the graph, say), each of its requests is run alone, so a
request's error is its own. A request larger than max_batch_size runs alone (the server's --max-batch still
bounds it). The answers equal the unbatched ones up to float32 round-off (a different batch size may change the
order of sums in the kernels; tests/tolerances.py).
"""

import collections
import dataclasses
import os
import threading
import time
from concurrent import futures

import grpc
import numpy as np

from dirtypixels_tf.serving.config import parse_batching_parameters
from dirtypixels_tf.serving.repository import ServingError


@dataclasses.dataclass(frozen=True)
class BatchingParameters:
    """TF Serving's batching parameters (see the module docstring); the defaults are TF Serving's."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = dataclasses.field(default_factory=lambda: os.cpu_count() or 1)
    allowed_batch_sizes: tuple = ()

    def __post_init__(self):
        for name in ("max_batch_size", "max_enqueued_batches", "num_batch_threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"batching parameter {name} must be a positive integer; received {value!r}")
        timeout = self.batch_timeout_micros
        if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 0:
            raise ValueError(f"batching parameter batch_timeout_micros must be an integer >= 0; received {timeout!r}")
        sizes = tuple(self.allowed_batch_sizes)
        if sizes and (
            any(b <= a for a, b in zip(sizes, sizes[1:])) or sizes[0] < 1 or sizes[-1] != self.max_batch_size
        ):
            raise ValueError(
                f"batching parameter allowed_batch_sizes must increase from >= 1 and end at max_batch_size "
                f"({self.max_batch_size}); received {list(sizes)}"
            )
        object.__setattr__(self, "allowed_batch_sizes", sizes)

    @classmethod
    def from_text(cls, text, source="the batching parameters"):
        """Parse TF Serving's text format (checked by config.parse_batching_parameters, the deployment files'
        checker); fields the file leaves out take TF Serving's defaults. A ValueError naming `source` and the field."""
        fields = parse_batching_parameters(text, source)
        if "thread_pool_name" in fields:
            raise ValueError(f"{source}: thread_pool_name is not supported by dirtypixels serve (one pool)")
        if fields.pop("pad_variable_length_inputs", False):
            raise ValueError(f"{source}: pad_variable_length_inputs: true is not supported (false only)")
        try:
            return cls(**{name: tuple(v) if isinstance(v, list) else v for name, v in fields.items()})
        except ValueError as error:
            raise ValueError(f"{source}: {error}") from None

    @classmethod
    def from_file(cls, path):
        try:
            with open(path, encoding="utf-8") as file:
                text = file.read()
        except OSError as error:
            raise ValueError(f"--batching-parameters-file: cannot read {path!r}: {error.strerror}") from None
        return cls.from_text(text, f"--batching-parameters-file {path}")

    def padded_size(self, size):
        """The batch size a batch of `size` examples is computed at (allowed_batch_sizes; else `size`)."""
        return next((allowed for allowed in self.allowed_batch_sizes if allowed >= size), size)


class _Task:
    def __init__(self, arrays, size):
        self.arrays = arrays
        self.size = size
        self.future = futures.Future()


class _Batch:
    def __init__(self, servable, signature_name, deadline):
        self.servable = servable  # held here, so a version swapped out meanwhile still answers its requests
        self.signature_name = signature_name
        self.deadline = deadline
        self.tasks = []
        self.size = 0


class Batcher:
    """Merges concurrent requests and runs them on `num_batch_threads` threads (see the module docstring).

    run(servable, signature_name, arrays) -> {output name: array with the batch first}: the unbatched call, which
    may raise ServingError. Call `predict` from many request threads; `stop` ends the batch threads.
    calls: a Counter {examples in a call (before padding): calls made}, for monitoring and the tests.
    """

    def __init__(self, parameters, run):
        self.parameters = parameters
        self._run = run
        self._condition = threading.Condition()
        self._open = {}  # merge key -> _Batch still collecting
        self._ready = collections.deque()  # closed batches waiting for a thread
        self._stopped = False
        self.calls = collections.Counter()
        self._threads = [
            threading.Thread(target=self._work, name=f"batch-{i}", daemon=True)
            for i in range(parameters.num_batch_threads)
        ]
        for thread in self._threads:
            thread.start()

    def predict(self, servable, signature_name, arrays):
        """The outputs for one request's `arrays` ({input name: array, batch first}), computed in a merged batch."""
        size = len(next(iter(arrays.values())))
        key = (id(servable), signature_name, tuple((n, a.dtype.str, a.shape[1:]) for n, a in sorted(arrays.items())))
        task = _Task(arrays, size)
        with self._condition:
            if self._stopped:
                raise ServingError(grpc.StatusCode.UNAVAILABLE, "the server is stopping")
            batch = self._open.get(key)
            if batch is not None and batch.size + size > self.parameters.max_batch_size:
                self._close(key)
                batch = None
            if batch is None:
                if len(self._ready) + len(self._open) >= self.parameters.max_enqueued_batches:
                    raise ServingError(
                        grpc.StatusCode.UNAVAILABLE,
                        f"The batch scheduling queue is full ({self.parameters.max_enqueued_batches} batches, "
                        f"max_enqueued_batches); retry later",
                    )
                deadline = time.monotonic() + self.parameters.batch_timeout_micros * 1e-6
                batch = self._open[key] = _Batch(servable, signature_name, deadline)
            batch.tasks.append(task)
            batch.size += size
            if batch.size >= self.parameters.max_batch_size:
                self._close(key)
            self._condition.notify_all()
        return task.future.result()

    def _close(self, key):
        self._ready.append(self._open.pop(key))

    def _next_batch(self):
        with self._condition:
            while not self._stopped:
                if self._ready:
                    return self._ready.popleft()
                now = time.monotonic()
                due = min(self._open, key=lambda k: self._open[k].deadline, default=None)
                if due is not None and self._open[due].deadline <= now:
                    return self._open.pop(due)  # full or not: its time is up and this thread is free
                self._condition.wait(self._open[due].deadline - now if due is not None else None)
            return None

    def _work(self):
        while (batch := self._next_batch()) is not None:
            self._compute(batch)

    def _compute(self, batch):
        tasks = batch.tasks
        if len(tasks) > 1:
            try:
                outputs = self._merged(batch)
            except ServingError:
                outputs = None  # someone's values were refused: each request runs alone below
            except Exception as error:  # a bug: every request of the batch gets it
                for task in tasks:
                    task.future.set_exception(error)
                return
            if outputs is not None:
                start = 0
                for task in tasks:
                    task.future.set_result({name: value[start : start + task.size] for name, value in outputs.items()})
                    start += task.size
                return
        for task in tasks:
            try:
                task.future.set_result(self._padded_run(batch, task.arrays, task.size))
            except Exception as error:
                task.future.set_exception(error)

    def _merged(self, batch):
        """The outputs of the whole batch, or None when an output is not per example (then each runs alone)."""
        names = batch.tasks[0].arrays
        merged = {name: np.concatenate([task.arrays[name] for task in batch.tasks]) for name in names}
        outputs = self._padded_run(batch, merged, batch.size)
        if any(np.ndim(value) == 0 or len(value) != batch.size for value in outputs.values()):
            return None
        return outputs

    def _padded_run(self, batch, arrays, size):
        padded = self.parameters.padded_size(size)
        if padded > size:
            arrays = {name: np.concatenate([a, np.repeat(a[-1:], padded - size, axis=0)]) for name, a in arrays.items()}
        with self._condition:
            self.calls[size] += 1
        outputs = self._run(batch.servable, batch.signature_name, arrays)
        return {
            name: np.asarray(value)[:size] if np.ndim(value) else np.asarray(value) for name, value in outputs.items()
        }

    def stop(self):
        """Answer the batches still open, then end the batch threads."""
        with self._condition:
            for key in list(self._open):
                self._close(key)
        while True:
            with self._condition:
                if not self._ready:
                    self._stopped = True
                    self._condition.notify_all()
                    break
                batch = self._ready.popleft()
            self._compute(batch)
        for thread in self._threads:
            thread.join()
