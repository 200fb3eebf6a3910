"""The package as a user installs it from a wheel (not the source tree): its bundled configs are found."""

import os
import pathlib
import shutil
import site
import subprocess
import sys
import sysconfig

import pytest

REPO_ROOT = pathlib.Path(__file__).parents[1]


@pytest.mark.slow
def test_a_wheel_in_a_fresh_venv_runs_the_main_job_and_finds_the_bundled_configs(tmp_path):
    source = tmp_path / "source"  # a copy, so that the build leaves nothing in the repository
    shutil.copytree(REPO_ROOT, source, ignore=shutil.ignore_patterns(".*", "build", "runs", "*.egg-info"))
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)],
        check=True,
        timeout=600,
    )
    (wheel,) = wheels.glob("dirtypixels_tf-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    # The dependencies are this environment's (a plain path entry: its editable install of the project is not
    # activated); the project itself comes from the wheel only.
    target = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    dependencies = sorted({sysconfig.get_paths()["purelib"], *site.getsitepackages()})
    pathlib.Path(target, "dependencies.pth").write_text("\n".join(dependencies) + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, timeout=600)

    work = tmp_path / "elsewhere"  # not the source tree
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run(
        [str(python), "-c", "import dirtypixels_tf; print(dirtypixels_tf.__file__)"],
        cwd=work,
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    assert str(venv) in where, where
    dirtypixels = [str(venv / "bin" / "dirtypixels")]
    release = subprocess.run(
        dirtypixels + ["train", "--config", "release_joint_3lux"], cwd=work, capture_output=True, text=True, env=env
    )
    assert release.returncode == 2 and "data.train_path: a required user setting" in release.stderr, release.stderr
    tiny = ["data.train_examples=64", "data.eval_examples=64", "data.epochs=1", "data.batch_size=32"]
    overrides = [arg for item in tiny for arg in ("--set", item)]
    default = subprocess.run(
        dirtypixels + ["train", "--quiet", *overrides], cwd=work, capture_output=True, text=True, env=env, timeout=900
    )
    assert default.returncode == 0, default.stderr[-2000:]
    assert "test (anscombe): top-1" in default.stdout and (work / "runs" / "default" / "model.keras").is_file()
