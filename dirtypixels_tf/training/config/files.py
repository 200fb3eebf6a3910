"""YAML config files: the bundled names, `base:` chains, `a.b=VALUE` overrides, and params.yaml written back.

Hostile files: a config file (each of a `base:` chain) may be at most MAX_CONFIG_BYTES, checked before it is read;
YAML aliases (`*name`) are refused where the parser meets them, before anything is expanded (a few nested anchors
would otherwise expand to gigabytes); refusals quote at most a short prefix of a value (schema.ConfigError).
"""

import os
import tempfile

import yaml

from dirtypixels_tf.training.config.schema import (
    CONFIG_DIR,
    DEFAULT_CONFIG_NAME,
    PARAMS_FILE,
    ConfigError,
    merge,
    to_dict,
)
from dirtypixels_tf.training.config.validation import from_dict

MAX_CONFIG_BYTES = 1024 * 1024  # the bundled configs are ~1 KB; params.yaml ~3 KB


class _ConfigLoader(yaml.SafeLoader):
    """YAML's safe loader without aliases: an alias is refused when it is composed, before it is expanded."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None,
                None,
                f"found alias *{event.anchor[:40]}: aliases are not allowed in config files",
                event.start_mark,
            )
        return super().compose_node(parent, index)


def parse_yaml(text):
    """Plain data of YAML text (aliases refused: _ConfigLoader)."""
    return yaml.load(text, Loader=_ConfigLoader)  # noqa: S506 (a SafeLoader subclass)


def read_yaml(path, _chain=()):
    """The plain data of a YAML config file with its `base:` chain merged in."""
    path = os.path.abspath(os.fspath(path))
    if path in _chain:
        raise ConfigError(f"base: circular chain of config files: {' -> '.join(_chain + (path,))}")
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path!r}")
    size = os.path.getsize(path)
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: a config file may be at most {MAX_CONFIG_BYTES} bytes; this one has {size}")
    with open(path, encoding="utf-8") as stream:
        try:
            data = parse_yaml(stream.read(MAX_CONFIG_BYTES + 1))
        except UnicodeDecodeError as error:
            raise ConfigError(f"{path}: not UTF-8 text: {error}") from None
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML: {error}") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections; received {type(data).__name__}")
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"base: expected the path of another config file, received {base!r}")
    return merge(read_yaml(os.path.join(os.path.dirname(path), base), _chain + (path,)), data)


def named_configs():
    """The names of the experiment configs that ship with the package (dirtypixels_tf/configs/NAME.yaml)."""
    return sorted(os.path.splitext(name)[0] for name in os.listdir(CONFIG_DIR) if name.endswith(".yaml"))


def resolve_config(name_or_path=None):
    """The path of a config: an existing YAML file, or the name of a bundled one (`release_joint_3lux`, with or
    without `.yaml`); None is the default experiment. Raises ConfigError naming the argument otherwise."""
    if name_or_path is None:
        name_or_path = DEFAULT_CONFIG_NAME
    if os.path.isfile(name_or_path):
        return os.path.abspath(name_or_path)
    if "/" not in name_or_path and os.sep not in name_or_path:
        name = name_or_path[: -len(".yaml")] if name_or_path.endswith(".yaml") else name_or_path
        bundled = os.path.join(CONFIG_DIR, name + ".yaml")
        if os.path.isfile(bundled):
            return bundled
    raise ConfigError(
        f"--config: no such file or bundled config {name_or_path!r}; bundled configs: {', '.join(named_configs())}"
    )


def apply_override(data, assignment):
    """Apply one `a.b.c=VALUE` override to plain config data (VALUE read as YAML); returns new data."""
    if not isinstance(assignment, str) or "=" not in assignment:
        raise ConfigError(f"an override must look like section.key=value; received {assignment!r}")
    key, text = assignment.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"an override must look like section.key=value; received {assignment!r}")
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{key}: an override value may be at most {MAX_CONFIG_BYTES} characters; received {len(text)}"
        )
    try:
        value = parse_yaml(text) if text.strip() else ""
    except yaml.YAMLError as error:
        raise ConfigError(f"{key}: the value {text[:60]!r} is not valid YAML ({error})") from None
    nested = value
    for part in reversed(parts):
        nested = {part: nested}
    return merge(data, nested)


def load_config(path=None, overrides=()):
    """The ExperimentConfig of YAML file `path` (None = all defaults) with `overrides` ("a.b=VALUE") applied."""
    data = {} if path is None else read_yaml(path)
    for assignment in overrides:
        data = apply_override(data, assignment)
    return from_dict(data)


def save_params(config, run_dir):
    """Write `run_dir/params.yaml` (self-contained; load_config reads it back to an equal config), whole or not at
    all: through a temporary file and a rename, so a run killed while writing it still resumes. Returns the path."""
    os.makedirs(run_dir, exist_ok=True)
    path = os.path.join(run_dir, PARAMS_FILE)
    handle, partial = tempfile.mkstemp(prefix=".params-", suffix=".yaml", dir=run_dir)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            yaml.safe_dump(to_dict(config), stream, sort_keys=False, default_flow_style=None)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return path
