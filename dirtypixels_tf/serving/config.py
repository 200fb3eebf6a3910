"""TF Serving deployment files: writer and validators.

`write_serving_config(out_dir, model_name, base_path)` writes, for the official tensorflow/serving image:
- models.config: a ModelServerConfig (text proto), one model at /models/NAME in the container, platform
  "tensorflow", version policy latest N (or specific versions), optional version labels;
- batching_parameters.txt: BatchingParameters (text proto) for --enable_batching;
- monitoring.config: MonitoringConfig (text proto), Prometheus metrics at /monitoring/prometheus/metrics (REST port);
- docker-compose.yml: tensorflow/serving:latest-gpu with these files at /config, the host's base path read-only at
  /models/NAME, gRPC on 8500, REST on 8501, one NVIDIA GPU.

Validation: models.config is parsed with tensorflow-serving-api's protos. That package lacks BatchingParameters and
MonitoringConfig, so their files are read by a parser of the text-proto subset they use and checked against TF
Serving's protos (session_bundle_config.proto, monitoring_config.proto): max_batch_size, batch_timeout_micros,
max_enqueued_batches, num_batch_threads are Int64Value, written `name { value: N }` (>= 1; the timeout >= 0);
thread_pool_name a StringValue; allowed_batch_sizes repeated int64, strictly increasing, each >= 1, the last equal
to max_batch_size (TF Serving's default 1000 if unset); pad_variable_length_inputs a bool. Fields of newer TF
Serving releases not listed here are refused (the check would not know their rules).
"""

import dataclasses
import os
import re

from google.protobuf import text_format

CONTAINER_CONFIG_DIR = "/config"
FILES = ("models.config", "batching_parameters.txt", "monitoring.config", "docker-compose.yml")
DEFAULT_IMAGE = "tensorflow/serving:latest-gpu"
PROMETHEUS_PATH = "/monitoring/prometheus/metrics"
TF_SERVING_DEFAULT_MAX_BATCH_SIZE = 1000


@dataclasses.dataclass(frozen=True)
class Batching:
    """BatchingParameters. Defaults suit a GPU serving single frames from phones (~60 frames/s each, Diamond et al. 2021
    Sec. 6): requests that arrive within 1 ms are run together, padded to a power of two up to 32."""

    max_batch_size: int = 32
    batch_timeout_micros: int = 1000
    max_enqueued_batches: int = 100
    num_batch_threads: int = 4
    allowed_batch_sizes: tuple = (1, 2, 4, 8, 16, 32)
    pad_variable_length_inputs: bool = False

    def to_text(self):
        lines = [
            f"{name} {{ value: {getattr(self, name)} }}"
            for name in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads")
        ]
        lines += [f"allowed_batch_sizes: {size}" for size in self.allowed_batch_sizes]
        lines.append(f"pad_variable_length_inputs: {str(self.pad_variable_length_inputs).lower()}")
        return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------- text-proto subset

_TOKEN = re.compile(
    r"""\s*(?:(?P<comment>\#[^\n]*)|(?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')|"""
    r"""(?P<number>[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+)[fF]?)|(?P<name>[A-Za-z_][A-Za-z0-9_.]*)|"""
    r"""(?P<symbol>[{}:;,\[\]<>]))"""
)


def _tokens(text, source):
    """(kind, text, line) tokens; comments dropped."""
    position = 0
    while True:
        match = _TOKEN.match(text, position)
        if match is None:
            rest = text[position:].strip()
            if not rest:
                return
            line = text.count("\n", 0, position + len(text[position:]) - len(text[position:].lstrip())) + 1
            raise ValueError(f"{source}: line {line}: cannot read {rest[:20]!r}")
        position = match.end()
        if match.lastgroup != "comment":
            yield match.lastgroup, match.group(match.lastgroup), text.count("\n", 0, match.start(match.lastgroup)) + 1


class _Parser:
    """Parses `field: scalar`, `field: [a, b]`, `field { ... }` / `field: { ... }` into [(name, value, line)]."""

    def __init__(self, text, source):
        self.tokens = list(_tokens(text, source))
        self.index = 0
        self.source = source

    def error(self, message, line=None):
        if line is None:
            line = self.tokens[min(self.index, len(self.tokens) - 1)][2] if self.tokens else 1
        return ValueError(f"{self.source}: line {line}: {message}")

    def peek(self):
        return self.tokens[self.index] if self.index < len(self.tokens) else (None, None, None)

    def take(self):
        token = self.peek()
        self.index += 1
        return token

    def scalar(self):
        kind, text, line = self.take()
        if kind == "number":
            return float(text.rstrip("fF")) if re.search(r"[.eEfF]", text) else int(text)
        if kind == "string":
            return text[1:-1].encode("utf-8").decode("unicode_escape")
        if kind == "name":
            return {"true": True, "false": False}.get(text, _Enum(text))
        raise self.error(f"expected a value; received {text!r}", line)

    def fields(self, closing=None):
        result = []
        while True:
            kind, text, line = self.peek()
            if kind is None:
                if closing is not None:
                    raise self.error(f"missing {closing!r}")
                return result
            if kind == "symbol" and text == closing:
                self.take()
                return result
            if kind != "name":
                raise self.error(f"expected a field name; received {text!r}", line)
            self.take()
            has_colon = self.peek()[1] == ":"
            if has_colon:
                self.take()
            if self.peek()[1] in ("{", "<"):
                opener = self.take()[1]
                result.append((text, self.fields("}" if opener == "{" else ">"), line))
            elif not has_colon:
                raise self.error(f"expected ':' or '{{' after {text!r}", line)
            elif self.peek()[1] == "[":
                self.take()
                while self.peek()[1] != "]":
                    result.append((text, self.scalar(), line))
                    if self.peek()[1] == ",":
                        self.take()
                self.take()
            else:
                result.append((text, self.scalar(), line))
            if self.peek()[1] in (",", ";"):
                self.take()


class _Enum(str):
    """An unquoted identifier value (an enum name)."""


def _parse(text, source):
    return _Parser(text, source).fields()


def _bool(value, name, line, source):
    """Text-format booleans: true/false, True/False, t/f, 1/0."""
    words = {"true": True, "True": True, "t": True, "false": False, "False": False, "f": False}
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, _Enum) and value in words:
        return words[value]
    raise ValueError(f"{source}: line {line}: {name} must be true or false; received {value!r}")


def _integer(value, name, line, source, minimum):
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{source}: line {line}: {name} must be an integer; received {value!r}")
    if value < minimum:
        raise ValueError(f"{source}: line {line}: {name} must be >= {minimum}; received {value}")
    return value


def _wrapped(value, name, line, source, kind):
    """The value of a google.protobuf wrapper message written `name { value: X }`."""
    if not isinstance(value, list):
        raise ValueError(
            f"{source}: line {line}: {name} is a google.protobuf.{kind} message: write `{name} {{ value: ... }}`; "
            f"received `{name}: {value!r}`"
        )
    if len(value) != 1 or value[0][0] != "value":
        raise ValueError(f"{source}: line {line}: {name} must hold exactly one `value` field")
    return value[0][1]


_INT64_WRAPPERS = {"max_batch_size": 1, "batch_timeout_micros": 0, "max_enqueued_batches": 1, "num_batch_threads": 1}


def parse_batching_parameters(text, source="batching parameters"):
    """Parse and check a BatchingParameters text proto; returns {field: value}; ValueError names line and field."""
    fields = {}
    allowed = []
    for name, value, line in _parse(text, source):
        if name in fields and name != "allowed_batch_sizes":
            raise ValueError(f"{source}: line {line}: {name} is given twice")
        if name in _INT64_WRAPPERS:
            fields[name] = _integer(
                _wrapped(value, name, line, source, "Int64Value"), name, line, source, _INT64_WRAPPERS[name]
            )
        elif name == "thread_pool_name":
            fields[name] = _wrapped(value, name, line, source, "StringValue")
            if not isinstance(fields[name], str):
                raise ValueError(f"{source}: line {line}: thread_pool_name must be a string; received {fields[name]!r}")
        elif name == "allowed_batch_sizes":
            allowed.append((_integer(value, name, line, source, 1), line))
        elif name == "pad_variable_length_inputs":
            fields[name] = _bool(value, name, line, source)
        else:
            known = [*_INT64_WRAPPERS, "thread_pool_name", "allowed_batch_sizes", "pad_variable_length_inputs"]
            raise ValueError(f"{source}: line {line}: unknown field {name!r}; BatchingParameters fields are {known}")
    if allowed:
        sizes = [size for size, _ in allowed]
        for (previous, _), (size, line) in zip(allowed, allowed[1:]):
            if size <= previous:
                raise ValueError(
                    f"{source}: line {line}: allowed_batch_sizes must be strictly increasing; received {sizes}"
                )
        maximum = fields.get("max_batch_size", TF_SERVING_DEFAULT_MAX_BATCH_SIZE)
        if sizes[-1] != maximum:
            raise ValueError(
                f"{source}: the last allowed_batch_sizes entry must equal max_batch_size ({maximum}); received {sizes}"
            )
        fields["allowed_batch_sizes"] = sizes
    return fields


def parse_monitoring_config(text, source="monitoring config"):
    """Parse and check a MonitoringConfig text proto; returns {"enable": bool, "path": str}."""
    parsed = _parse(text, source)
    if [name for name, _, _ in parsed] != ["prometheus_config"] or not isinstance(parsed[0][1], list):
        raise ValueError(f"{source}: expected exactly one `prometheus_config {{ ... }}` message")
    config = {"enable": False, "path": PROMETHEUS_PATH}
    for name, value, line in parsed[0][1]:
        if name == "enable" and not isinstance(value, list):
            config["enable"] = _bool(value, "prometheus_config.enable", line, source)
        elif name == "path" and isinstance(value, str) and value.startswith("/"):
            config["path"] = value
        else:
            raise ValueError(
                f'{source}: line {line}: prometheus_config takes `enable: true|false` and `path: "/..."`; '
                f"received {name}: {value!r}"
            )
    return config


def parse_models_config(text, source="models.config"):
    """Parse a ModelServerConfig text proto with TF Serving's own protos and check each model; returns the proto."""
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as error:
        raise ValueError(f"{source}: {error}") from None
    models = config.model_config_list.config
    if not models:
        raise ValueError(f"{source}: model_config_list has no model")
    for model in models:
        if not model.name or not model.base_path:
            raise ValueError(f"{source}: every model needs a name and a base_path; received {model}")
        if model.model_platform != "tensorflow":
            raise ValueError(f'{source}: model {model.name!r} must have model_platform "tensorflow"')
        policy = model.model_version_policy
        if policy.WhichOneof("policy_choice") == "latest" and policy.latest.num_versions < 1:
            raise ValueError(f"{source}: model {model.name!r}: latest.num_versions must be >= 1")
        if policy.WhichOneof("policy_choice") == "specific":
            served = set(policy.specific.versions)
            stray = {label: v for label, v in model.version_labels.items() if v not in served}
            if not served or stray:
                raise ValueError(
                    f"{source}: model {model.name!r}: specific versions {sorted(served)} must be non-empty and "
                    f"include every labelled version; received labels {dict(model.version_labels)}"
                )
    return config


# ------------------------------------------------------------------------------------------------------ writer


def _check_name(model_name):
    if not isinstance(model_name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", model_name):
        raise ValueError(f"model_name must be letters, digits, '_', '.' or '-'; received {model_name!r}")
    return model_name


def models_config_text(model_name, num_versions=1, versions=None, version_labels=None):
    """The models.config text: latest `num_versions`, or the `versions` listed; labels {label: version}."""
    name = _check_name(model_name)
    if versions:
        policy = "specific { " + " ".join(f"versions: {int(v)}" for v in versions) + " }"
    else:
        policy = f"latest {{ num_versions: {int(num_versions)} }}"
    lines = [
        "model_config_list {",
        "  config {",
        f'    name: "{name}"',
        f'    base_path: "/models/{name}"',
        '    model_platform: "tensorflow"',
        f"    model_version_policy {{ {policy} }}",
    ]
    for label, version in sorted((version_labels or {}).items()):
        lines.append(f'    version_labels {{ key: "{label}" value: {int(version)} }}')
    lines += ["  }", "}"]
    text = "\n".join(lines) + "\n"
    parse_models_config(text)
    return text


def monitoring_config_text():
    return f'prometheus_config {{\n  enable: true\n  path: "{PROMETHEUS_PATH}"\n}}\n'


def compose_text(model_name, host_base_path, image=DEFAULT_IMAGE, poll_seconds=2):
    """docker-compose.yml: TF Serving with the config files of its own directory and the model's base path."""
    name = _check_name(model_name)
    return f"""# TensorFlow Serving for model "{name}" (written by `dirtypixels serving-config`).
# Start: docker compose up -d   (needs the NVIDIA Container Toolkit; for a CPU-only host use tensorflow/serving:latest
# and remove the deploy section). gRPC on 8500, REST on 8501, Prometheus metrics at http://HOST:8501{PROMETHEUS_PATH}.
# New versions written into the base path (dirtypixels export ... --out BASE) are picked up within {poll_seconds} s.
services:
  tf-serving:
    image: {image}
    entrypoint: ["tensorflow_model_server"]
    command:
      - --port=8500
      - --rest_api_port=8501
      - --model_config_file={CONTAINER_CONFIG_DIR}/models.config
      - --model_config_file_poll_wait_seconds=60
      - --file_system_poll_wait_seconds={poll_seconds}
      - --enable_batching=true
      - --batching_parameters_file={CONTAINER_CONFIG_DIR}/batching_parameters.txt
      - --monitoring_config_file={CONTAINER_CONFIG_DIR}/monitoring.config
      - --enable_model_warmup=true
    ports:
      - "8500:8500"
      - "8501:8501"
    volumes:
      - "./:{CONTAINER_CONFIG_DIR}:ro"
      - "{host_base_path}:/models/{name}:ro"
    restart: unless-stopped
    deploy:
      resources:
        reservations:
          devices:
            - driver: nvidia
              count: 1
              capabilities: [gpu]
"""


def _compose_path(base_path, out_dir):
    """base_path as the compose file must name it: relative to out_dir, starting with ./ or ../ (a bare name would
    be a named volume), or absolute when it is on another drive."""
    if os.path.isabs(base_path) and os.path.splitdrive(base_path)[0] != os.path.splitdrive(os.path.abspath(out_dir))[0]:
        return base_path
    relative = os.path.relpath(os.path.abspath(base_path), os.path.abspath(out_dir)).replace(os.sep, "/")
    return relative if relative.startswith("../") else f"./{relative}"


def write_serving_config(
    out_dir,
    model_name,
    base_path,
    num_versions=1,
    version_labels=None,
    batching=None,
    image=DEFAULT_IMAGE,
    poll_seconds=2,
):
    """Write the four deployment files into out_dir (created if needed); returns {file name: path}.

    base_path is the host directory holding the model's versions (what `dirtypixels export --out` wrote); the
    compose file mounts it at /models/NAME, the base path models.config names.
    """
    batching = batching or Batching()
    batching_text = batching.to_text()
    parse_batching_parameters(batching_text)
    texts = {
        "models.config": models_config_text(model_name, num_versions, version_labels=version_labels),
        "batching_parameters.txt": batching_text,
        "monitoring.config": monitoring_config_text(),
        "docker-compose.yml": compose_text(
            model_name, _compose_path(os.fspath(base_path), out_dir), image, poll_seconds
        ),
    }
    os.makedirs(out_dir, exist_ok=True)
    paths = {}
    for name, text in texts.items():
        paths[name] = os.path.join(out_dir, name)
        with open(paths[name], "w", encoding="utf-8") as file:
            file.write(text)
    return paths


def check_serving_config(directory):
    """Validate the deployment files in `directory`; returns {file name: parsed value}, or raises ValueError."""
    import yaml

    def read(name):
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            raise ValueError(f"{path}: missing (serving-config writes {', '.join(FILES)})")
        with open(path, encoding="utf-8") as file:
            return file.read()

    compose = yaml.safe_load(read("docker-compose.yml"))
    service = next(iter((compose or {}).get("services", {}).values()), None)
    if not service or "tensorflow/serving" not in str(service.get("image", "")):
        raise ValueError(f"{directory}/docker-compose.yml: expected a service running a tensorflow/serving image")
    return {
        "models.config": parse_models_config(read("models.config")),
        "batching_parameters.txt": parse_batching_parameters(read("batching_parameters.txt")),
        "monitoring.config": parse_monitoring_config(read("monitoring.config")),
        "docker-compose.yml": compose,
    }
