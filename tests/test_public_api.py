"""The public API: every name each subpackage lists resolves, the command line's imports stay free of
TensorFlow, missing optional packages name their extra, and the README's Python example runs as written."""

import ast
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
        "dirtypixels_tf.models, dirtypixels_tf.catalog; print('tensorflow' in sys.modules)"
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


def _package_imports():
    """{module: the package modules it imports, at the top or inside a function} from the source."""
    imports = {}
    for path in (REPO_ROOT / "dirtypixels_tf").rglob("*.py"):
        module = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts).removesuffix(".__init__")
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dirtypixels_tf"):
                for alias in node.names:
                    child = f"{node.module}.{alias.name}"
                    is_module = (REPO_ROOT / (child.replace(".", "/") + ".py")).is_file()
                    found.add(child if is_module else node.module)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("dirtypixels_tf"))
        imports[module] = found - {module}
    return imports


def test_no_module_imports_one_that_imports_it_back():
    imports = _package_imports()
    assert "dirtypixels_tf.evaluation.grid" in imports and "dirtypixels_tf.evaluation.axes" in imports
    cycles = []
    for start in imports:
        stack, seen = list(imports[start]), set()
        while stack:
            module = stack.pop()
            if module == start:
                cycles.append(start)
                break
            if module not in seen:
                seen.add(module)
                stack.extend(imports.get(module, ()))
    assert cycles == []
