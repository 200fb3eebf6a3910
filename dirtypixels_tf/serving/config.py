"""TF Serving deployment files: writer and validators.

`write_serving_config(out_dir, model_name, base_path)` writes, for the official tensorflow/serving image:
- models.config: a ModelServerConfig (text proto), one model at /models/NAME in the container, platform
  "tensorflow", version policy latest N (or specific versions), optional version labels;
- batching_parameters.txt: BatchingParameters (text proto) for --enable_batching;
- monitoring.config: MonitoringConfig (text proto), Prometheus metrics at /monitoring/prometheus/metrics (REST port);
- docker-compose.yml: tensorflow/serving:latest-gpu with these files at /config, the host's base path read-only at
  /models/NAME, gRPC on 8500, REST on 8501, one NVIDIA GPU.

Validation: every file is parsed by protobuf's text_format; models.config with tensorflow-serving-api's protos,
BatchingParameters and MonitoringConfig (which that package lacks) with message types built here from TF Serving's
.proto definitions (session_bundle_config.proto, monitoring_config.proto), so unknown fields, wrong types and
fields given twice are refused as TF Serving refuses them. Checked on top: max_batch_size, max_enqueued_batches,
num_batch_threads >= 1 and batch_timeout_micros >= 0 (Int64Value, written `name { value: N }`); allowed_batch_sizes
strictly increasing from >= 1, the last equal to max_batch_size (TF Serving's default 1000 if unset); exactly one
prometheus_config, its path starting with "/".
"""

import dataclasses
import os
import re

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format, wrappers_pb2

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


# ------------------------------------------------------------------------------------ TF Serving's messages

# The fields of TF Serving's tensorflow_serving/servables/tensorflow/session_bundle_config.proto (BatchingParameters)
# and tensorflow_serving/config/monitoring_config.proto, package tensorflow.serving, proto3: (name, number, type).
_MESSAGES = {
    "BatchingParameters": [
        ("max_batch_size", 1, ".google.protobuf.Int64Value"),
        ("batch_timeout_micros", 2, ".google.protobuf.Int64Value"),
        ("max_enqueued_batches", 3, ".google.protobuf.Int64Value"),
        ("num_batch_threads", 4, ".google.protobuf.Int64Value"),
        ("thread_pool_name", 5, ".google.protobuf.StringValue"),
        ("allowed_batch_sizes", 6, "repeated int64"),
        ("pad_variable_length_inputs", 7, "bool"),
    ],
    "PrometheusConfig": [("enable", 1, "bool"), ("path", 2, "string")],
    "MonitoringConfig": [("prometheus_config", 1, ".tensorflow.serving.PrometheusConfig")],
}


def _message_classes():
    """{name: message class} for _MESSAGES, in a descriptor pool of their own (no clash with other protos)."""
    field_proto = descriptor_pb2.FieldDescriptorProto
    scalars = {"bool": field_proto.TYPE_BOOL, "string": field_proto.TYPE_STRING, "int64": field_proto.TYPE_INT64}
    file = descriptor_pb2.FileDescriptorProto(
        name="dirtypixels_tf/serving/tf_serving_config.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    for message_name, fields in _MESSAGES.items():
        message = file.message_type.add(name=message_name)
        for name, number, kind in fields:
            repeated = kind.startswith("repeated ")
            kind = kind.removeprefix("repeated ")
            field = message.field.add(
                name=name, number=number, label=field_proto.LABEL_REPEATED if repeated else field_proto.LABEL_OPTIONAL
            )
            if kind in scalars:
                field.type = scalars[kind]
            else:
                field.type, field.type_name = field_proto.TYPE_MESSAGE, kind
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(file)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tensorflow.serving.{name}"))
        for name in _MESSAGES
    }


_CLASSES = _message_classes()


def _parse(text, message_name, source):
    """text_format.Parse into a new `message_name`; a ParseError becomes a ValueError naming source and line."""
    message = _CLASSES[message_name]()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as error:
        raise ValueError(_parse_error_message(text, message.DESCRIPTOR, error, source)) from None
    return message


def _parse_error_message(text, descriptor, error, source):
    """ParseError's message after `source: line L, column C`; `name: 32` for a message field gets how to write it."""
    detail = re.sub(r"^\d+:\d+ : ", "", str(error))
    line, column = error.GetLine(), error.GetColumn()
    if line is None:
        return f"{source}: {detail}"
    where = f"{source}: line {line}, column {column}"
    lines = text.split("\n")  # as text_format counts lines
    before = "\n".join(lines[: line - 1] + [lines[line - 1][: column - 1]])
    written = re.search(r"(\w+)\s*:\s*$", before) if detail.endswith('Expected "{".') else None
    field = descriptor.fields_by_name.get(written.group(1)) if written else None
    if field is None or field.message_type is None:
        return f"{where}: {detail}"
    # `name: 32` where name is a message (a google.protobuf wrapper: `name { value: 32 }`)
    received = re.match(r"[^\s,;#]*", lines[line - 1][column - 1 :]).group()
    kind = field.message_type.full_name
    inner = f"value: {received}" if kind.startswith("google.protobuf.") else "..."
    return (
        f"{where}: {field.name} is a {kind} message: write `{field.name} {{ {inner} }}`; "
        f"received `{field.name}: {received}`"
    )


_INT64_MINIMUMS = {"max_batch_size": 1, "batch_timeout_micros": 0, "max_enqueued_batches": 1, "num_batch_threads": 1}


def parse_batching_parameters(text, source="batching parameters"):
    """Parse and check a BatchingParameters text proto; returns {field: value} of the fields given
    (pad_variable_length_inputs only when true); ValueError names source and field."""
    parameters = _parse(text, "BatchingParameters", source)
    fields = {}
    for name, minimum in _INT64_MINIMUMS.items():
        if parameters.HasField(name):
            fields[name] = getattr(parameters, name).value
            if fields[name] < minimum:
                raise ValueError(f"{source}: {name} must be >= {minimum}; received {fields[name]}")
    if parameters.HasField("thread_pool_name"):
        fields["thread_pool_name"] = parameters.thread_pool_name.value
    if parameters.pad_variable_length_inputs:
        fields["pad_variable_length_inputs"] = True
    sizes = list(parameters.allowed_batch_sizes)
    if sizes:
        if min(sizes) < 1:
            raise ValueError(f"{source}: allowed_batch_sizes must be >= 1; received {sizes}")
        if any(size <= previous for previous, size in zip(sizes, sizes[1:])):
            raise ValueError(f"{source}: allowed_batch_sizes must be strictly increasing; received {sizes}")
        maximum = fields.get("max_batch_size", TF_SERVING_DEFAULT_MAX_BATCH_SIZE)
        if sizes[-1] != maximum:
            raise ValueError(
                f"{source}: the last allowed_batch_sizes entry must equal max_batch_size ({maximum}); received {sizes}"
            )
        fields["allowed_batch_sizes"] = sizes
    return fields


def parse_monitoring_config(text, source="monitoring config"):
    """Parse and check a MonitoringConfig text proto; returns {"enable": bool, "path": str} (an empty or absent
    path is TF Serving's default, PROMETHEUS_PATH)."""
    parsed = _parse(text, "MonitoringConfig", source)
    if not parsed.HasField("prometheus_config"):
        raise ValueError(f"{source}: expected exactly one `prometheus_config {{ ... }}` message")
    prometheus = parsed.prometheus_config
    if prometheus.path and not prometheus.path.startswith("/"):
        raise ValueError(
            f'{source}: prometheus_config takes `enable: true|false` and `path: "/..."`; received path: '
            f"{prometheus.path!r}"
        )
    return {"enable": prometheus.enable, "path": prometheus.path or PROMETHEUS_PATH}


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
