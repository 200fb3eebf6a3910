"""Every script under benchmarks/ runs to the end in its --quick form (slow: they build and time real models)."""

import importlib.util
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


def test_liu_tables_merges_runs_of_one_seed_each(tmp_path):
    """Three runs' results.json (seed 0; seed 1 in two runs at other levels) tabulated together: the runs of one seed
    joined, the levels both seeds have only, each cell the mean of the seeds with both listed, the runs' wall clocks
    summed (each its longest), an ordering judged on the means."""
    import json

    def level(miou_separate, miou_joint, wall_s):
        columns = ("noisy", "conventional", "separate", "joint", "cross")
        seg = dict(zip(columns, (0.1, 0.2, miou_separate, miou_joint, 0.1)))
        return {"seg": seg, "cls": dict.fromkeys(columns, 0.5), "psnr": dict.fromkeys(columns, 20.0), "wall_s": wall_s}

    runs = [
        (0, {"sigma 60": level(0.14, 0.18, 100), "3 lux": level(0.10, 0.20, 300)}),
        (1, {"sigma 60": level(0.16, 0.17, 250)}),
        (1, {"12 lux": level(0.10, 0.11, 50)}),  # seed 1 at another level, in a run of its own
    ]
    paths = []
    for index, (seed, levels) in enumerate(runs):
        paths.append(tmp_path / f"run{index}.json")
        paths[-1].write_text(json.dumps({"settings": {"seeds": [seed], "head_epochs": 15}, "seeds": [levels]}))
    out = tmp_path / "merged"
    spec = importlib.util.spec_from_file_location("liu_tables", REPO_ROOT / "benchmarks" / "liu_tables.py")
    liu_tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(liu_tables)  # in this process: no training, only the tables
    assert liu_tables.main(["--merge", *map(str, paths), "--out", str(out)]) == 0
    tables = (out / "tables.md").read_text()
    assert "| sigma 60 | 10.0 (10.0/10.0) | 20.0 (20.0/20.0) | 15.0 (14.0/16.0) | 17.5 (18.0/17.0) |" in tables
    assert "3 lux" not in tables.split("Liu et al.")[0] and "12 lux" not in tables  # levels of one seed only
    assert "holds   sigma 60: mIoU joint >= separate + 2 points" in tables  # 17.5 >= 15.0 + 2
    assert "seeds [0, 1], wall clock 600 s" in tables and "'head_epochs': 15" in tables
    assert json.loads((out / "results.json").read_text())["settings"]["seeds"] == [0, 1]
