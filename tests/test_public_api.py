"""The public API: every name each subpackage lists resolves, the command line's imports stay free of
TensorFlow, missing optional packages name their extra, and the README's Python example runs as written."""

import importlib
import io
import os
import pathlib
import re
import subprocess
import sys
from contextlib import redirect_stdout

import pytest

from dirtypixels_tf import optional

REPO_ROOT = pathlib.Path(__file__).parents[1]
SUBPACKAGES = ("physics", "layers", "models", "data", "training", "evaluation", "export", "serving")


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_every_public_name_resolves(name):
    package = importlib.import_module(f"dirtypixels_tf.{name}")
    assert package.__all__ and package.__all__ == sorted(set(package.__all__))
    for public in package.__all__:
        value = getattr(package, public)
        assert value is not None, public
        assert not isinstance(value, type(package)), f"{name}.{public} is a module, not a public object"
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchThing'"):
        package.NoSuchThing  # noqa: B018


def test_the_command_line_and_the_configs_import_without_tensorflow():
    code = (
        "import sys; import dirtypixels_tf.cli, dirtypixels_tf.training.config, dirtypixels_tf.physics, "
        "dirtypixels_tf.models, dirtypixels_tf.physics.sensor_presets; print('tensorflow' in sys.modules)"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert run.stdout.strip() == "False"


def test_a_missing_optional_package_names_its_extra(monkeypatch):
    monkeypatch.setitem(optional.EXTRAS, "no_such_package_here", "raw")
    with pytest.raises(
        ImportError,
        match=r"reading RAW needs the optional package 'no_such_package_here': "
        r"pip install 'dirtypixels_tf\[raw\]'",
    ):
        optional.require("no_such_package_here", "reading RAW")
    assert optional.require("numpy", "arrays").__name__ == "numpy"


def test_the_readme_python_example_runs_as_written():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Python") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    printed = io.StringIO()
    with redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), {})
    expected = re.search(r"# (\(2, 1001\) \(2, 128, 128, 3\))", code).group(1)
    assert printed.getvalue().strip() == expected
