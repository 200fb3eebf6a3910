"""Every script under benchmarks/ runs to the end in its --quick form (slow: they build and time real models)."""

import os
import pathlib
import subprocess
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).parents[1]
SCRIPTS = sorted(p.name for p in (REPO_ROOT / "benchmarks").glob("*.py"))
OUTPUT_FLAG = {"replicate_table.py": "--out", "unprocess_comparison.py": "--out", "liu_tables.py": "--out"}


def test_every_benchmark_is_listed():
    assert len(SCRIPTS) >= 9, SCRIPTS


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_runs_quickly(script, tmp_path):
    command = [sys.executable, str(REPO_ROOT / "benchmarks" / script), "--quick"]
    if script in OUTPUT_FLAG:
        command += [OUTPUT_FLAG[script], str(tmp_path / "out")]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    run = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert run.stdout.strip(), "a benchmark prints its measurements"
