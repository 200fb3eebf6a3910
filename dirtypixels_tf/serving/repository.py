"""The versions of one model on disk, loaded and kept current the way TF Serving's file-system source does it.

A base path holds integer-named version directories (BASE/1, BASE/2, ...), each a SavedModel (the layout and the
rule for version names: export/layout.py). Every poll the
repository lists them, keeps the `num_versions` highest that hold a saved_model.pb (TF Serving's default policy is
the latest one), loads the new ones and unloads the others. Names that are not integers (such as the .tmp-N-xxxx
directories of an export under way) are ignored; so is a version directory without saved_model.pb yet (a copy in
progress): it is looked at again on the next poll. Folders named by digits that are not versions ("0010", numbers
beyond int64) and version folders that cannot be read (permissions, symbolic-link loops) are logged once, with the
reason, and the poll goes on with the others; an unreadable version is also reported by `states()` (END, with the
reason) until it becomes readable or goes. A version that fails to load is reported by `states()` and not
retried; the newest loaded version then stays (a server never drops to no version because a newer one is broken). A version replays its assets.extra/tf_serving_warmup_requests, if present, before it becomes available.

Version labels map a label to a version number (TF Serving's `version_labels` in models.config).
"""

import dataclasses
import logging
import os
import threading

import grpc
import tensorflow as tf

from dirtypixels_tf.export import layout
from dirtypixels_tf.physics.validation import check_int

LOGGER = logging.getLogger("dirtypixels_tf.serving")
INIT_OP_SIGNATURE = "__saved_model_init_op"


class ServingError(Exception):
    """A request the server answers with a gRPC status `code` (grpc.StatusCode) and `message`."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclasses.dataclass
class Servable:
    """One loaded version: its SignatureDefs (as TF Serving reports them) and the callable signatures."""

    version: int
    path: str
    signature_defs: dict  # name -> tensorflow.SignatureDef
    functions: dict  # name -> the loaded ConcreteFunction
    module: object  # keeps the loaded SavedModel (and its variables) alive

    def function(self, name):
        if name not in self.functions:
            raise ServingError(grpc.StatusCode.FAILED_PRECONDITION, f'Serving signature key "{name}" not found.')
        return self.functions[name]


def _signature_defs(path):
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(path, layout.SAVED_MODEL_FILE), "rb") as file:
        saved_model.ParseFromString(file.read())
    meta_graph = next(m for m in saved_model.meta_graphs if "serve" in m.meta_info_def.tags)
    return dict(meta_graph.signature_def)


def load_servable(path, version):
    """Load the SavedModel at `path` (tag "serve") as a Servable."""
    module = tf.saved_model.load(path, tags=["serve"])
    functions = {name: function for name, function in module.signatures.items() if name != INIT_OP_SIGNATURE}
    return Servable(version, path, _signature_defs(path), functions, module)


def _fingerprint(path):
    """(relative path, size, mtime) of every file under a version directory: changes when a copy progresses."""
    entries = []
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            try:
                info = os.stat(full)
            except OSError:  # removed while listing
                continue
            entries.append((os.path.relpath(full, path), info.st_size, info.st_mtime_ns))
    return tuple(sorted(entries))


class ModelRepository:
    """The loaded versions of model `name` under `base_path`.

    num_versions: how many of the highest versions stay loaded (TF Serving's `latest { num_versions }`; 1 default).
    version_labels: {label: version}. warmup: a callable (servable) run after loading and before the version is
    served (the server replays the warm-up requests with it); an exception fails the load.
    """

    def __init__(self, name, base_path, num_versions=1, version_labels=None, warmup=None):
        if not isinstance(name, str) or not name or "/" in name or ":" in name:
            raise ValueError(f"model name must be a non-empty string without '/' or ':'; received {name!r}")
        if not os.path.isdir(base_path):
            raise ValueError(f"base path must be an existing directory of model versions; received {base_path!r}")
        self.name = name
        self.base_path = os.fspath(base_path)
        self.num_versions = check_int(num_versions, "num_versions")
        self.version_labels = {}
        for label, version in (version_labels or {}).items():
            if not isinstance(label, str) or not label or label.isdigit():
                raise ValueError(f"version labels must be non-numeric strings; received {label!r}")
            self.version_labels[label] = check_int(version, f"version of label {label!r}")
        self.warmup = warmup
        self._servables = {}  # version -> Servable
        self._states = {}  # version -> ("AVAILABLE" | "END", error message or "")
        self._failed = {}  # version -> the files' fingerprint when it failed to load: retried when they change
        self._problems = {}  # folder name -> why it is not a usable version (logged once)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None

    def refresh(self):
        """One poll: load the wanted versions not loaded yet, then unload the others. Returns (loaded, unloaded).

        A version unloaded earlier is loaded again when it is wanted again (e.g. the newer one was deleted: a
        rollback); one that failed to load is tried again when its files have changed since.
        """
        found, problems = layout.scan_versions(self.base_path)
        self._report(problems)
        wanted = sorted(found)[-self.num_versions :]
        loaded = []
        for version in wanted:
            if version in self._servables:
                continue
            path = os.path.join(self.base_path, str(version))
            fingerprint = _fingerprint(path)
            if self._failed.get(version) == fingerprint:
                continue
            try:
                servable = load_servable(path, version)
                if self.warmup is not None:
                    self.warmup(servable)
            except Exception as error:  # a broken version must not stop the server; it is reported instead
                LOGGER.error("model %s: version %d failed to load: %s", self.name, version, error)
                message = f"{type(error).__name__}: {error}".replace(os.path.abspath(path), f"version {version}")
                with self._lock:
                    self._states[version] = ("END", message.replace(path, f"version {version}"))
                    self._failed[version] = fingerprint
                continue
            with self._lock:
                self._servables[version] = servable
                self._states[version] = ("AVAILABLE", "")
                self._failed.pop(version, None)
            loaded.append(version)
            LOGGER.info("model %s: version %d available", self.name, version)
        unloaded = []
        with self._lock:
            available = sorted(self._servables)
            # Availability first: if no wanted version could be loaded, the newest loaded one stays.
            keep = [v for v in available if v in wanted] or available[-1:]
            for version in available:
                if version not in keep:
                    del self._servables[version]
                    self._states[version] = ("END", "")
                    unloaded.append(version)
        for version in unloaded:
            LOGGER.info("model %s: version %d unloaded", self.name, version)
        return loaded, unloaded

    def _report(self, problems):
        """Log each folder's problem once (and again if it changes); unreadable versions also go to states()."""
        with self._lock:
            for name, reason in problems.items():
                if self._problems.get(name) != reason:
                    LOGGER.warning("model %s: folder %r under the base path: %s", self.name, name, reason)
                if layout.is_version_name(name) and int(name) not in self._servables:
                    self._states[int(name)] = ("END", f"version {name} {reason}")
            for name, reason in self._problems.items():
                if name not in problems:
                    LOGGER.info("model %s: folder %r: no longer a problem", self.name, name)
                    if layout.is_version_name(name) and self._states.get(int(name)) == (
                        "END",
                        f"version {name} {reason}",
                    ):
                        del self._states[int(name)]
            self._problems = dict(problems)

    def start_polling(self, poll_seconds):
        """Refresh every `poll_seconds` in a daemon thread until `stop_polling`."""
        if not poll_seconds > 0:
            raise ValueError(f"poll_seconds must be > 0; received {poll_seconds!r}")

        def poll():
            while not self._stop.wait(poll_seconds):
                try:
                    self.refresh()
                except OSError as error:  # e.g. the base path was removed: keep serving what is loaded
                    LOGGER.error("model %s: cannot list %s: %s", self.name, self.base_path, error)

        self._thread = threading.Thread(target=poll, name=f"poll-{self.name}", daemon=True)
        self._thread.start()

    def stop_polling(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def available_versions(self):
        with self._lock:
            return sorted(self._servables)

    def states(self):
        """{version: (state, error message)} of every version seen: "AVAILABLE", or "END" (unloaded or failed)."""
        with self._lock:
            return dict(self._states)

    def get(self, model_spec):
        """The Servable a ModelSpec asks for (name; version or version_label; else the latest), or ServingError."""
        version_field = model_spec.WhichOneof("version_choice")
        if version_field == "version":
            request = f"Specific({model_spec.name}, {model_spec.version.value})"
        elif version_field == "version_label":
            request = f"Labeled({model_spec.name}, {model_spec.version_label})"
        else:
            request = f"Latest({model_spec.name})"
        if model_spec.name != self.name:
            raise ServingError(
                grpc.StatusCode.NOT_FOUND,
                f"Servable not found for request: {request} (this server serves model {self.name!r})",
            )
        with self._lock:
            servables = dict(self._servables)
        if version_field == "version_label":
            if model_spec.version_label not in self.version_labels:
                raise ServingError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Unrecognized servable version label: {model_spec.version_label} "
                    f"(labels: {sorted(self.version_labels) or 'none'})",
                )
            version = self.version_labels[model_spec.version_label]
        elif version_field == "version":
            version = model_spec.version.value
        else:
            version = max(servables, default=None)
        if version not in servables:
            raise ServingError(
                grpc.StatusCode.NOT_FOUND,
                f"Servable not found for request: {request} (available versions: {sorted(servables) or 'none yet'})",
            )
        return servables[version]
