"""The catalog (dirtypixels_tf/catalog.py) is the one place every user-facing name is spelled, and it imports
without TensorFlow."""

import ast
import os
import pathlib
import subprocess
import sys

from dirtypixels_tf import catalog

PACKAGE = pathlib.Path(catalog.__file__).parent
REPO_ROOT = PACKAGE.parent
NOT_NAMES = {"PSF_GRAMMAR", "PSF_FILE_EXTENSIONS"}  # a sentence and file extensions, no names
# Words that are also the names of other things, so they may be written elsewhere: "none" (also no batch-norm
# folding, and a word in messages), "isp" (the ISP part of every model), "nidf" (the NIDF ISP and its loss) and
# "classify" (the subcommand).
SHARED_WORDS = {"none", "isp", "nidf", "classify"}


def catalog_names():
    """Every name the catalog holds: its string constants, the keys of its tables and the items of its tuples."""
    names = set()
    for attribute, value in vars(catalog).items():
        if not attribute.isupper() or attribute in NOT_NAMES:
            continue
        if isinstance(value, str):
            names.add(value)
        elif isinstance(value, (dict, tuple)):
            names.update(item for item in value if isinstance(item, str))
    return names


def _docstrings(tree):
    nodes = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, nodes)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }


def test_importing_the_catalog_imports_no_tensorflow():
    code = "import sys; import dirtypixels_tf.catalog; print('tensorflow' in sys.modules)"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert run.stdout.strip() == "False"


def test_no_catalog_name_is_retyped_in_the_package():
    names = catalog_names() - SHARED_WORDS
    assert {catalog.DEFAULT_PRESET, catalog.RELEASE_PATTERN, catalog.CLASSIFY_METHOD_NAME} <= names
    copies = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "catalog.py" and path.parent == PACKAGE:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in names and id(node) not in docstrings:
                copies.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}: {node.value!r}")
    assert not copies, "catalog names retyped outside dirtypixels_tf/catalog.py (import them):\n" + "\n".join(copies)


def test_the_tables_that_give_the_names_meaning_cover_them_all():
    from dirtypixels_tf.export import SIGNATURES
    from dirtypixels_tf.models.presets import PRESETS
    from dirtypixels_tf.physics import mosaic, noise, optics

    assert tuple(PRESETS) == catalog.MODEL_PRESETS
    assert tuple(optics.FIELD_POSITIONS) == catalog.FIELD_PSFS
    assert SIGNATURES == catalog.SIGNATURES
    assert mosaic.PATTERNS == catalog.PATTERNS and catalog.RELEASE_PATTERN in catalog.PATTERNS
    assert catalog.DEFAULT_PRESET in catalog.SENSOR_PRESETS and catalog.DEFAULT_PROFILE in catalog.LIGHT_PROFILES
    assert all(noise.get_noise_preset(name) for name in catalog.SENSOR_PRESETS)
