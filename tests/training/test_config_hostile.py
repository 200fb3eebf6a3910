"""Config files that attack: an alias bomb is refused before it expands, a file over the size limit before it is
read, a huge value is quoted by a short prefix, and a refused run leaves no run directory behind."""

import time

import pytest
from training_jobs import tiny

from dirtypixels_tf.training import config as config_lib
from dirtypixels_tf.training import from_dict, run_experiment
from dirtypixels_tf.training.config.files import MAX_CONFIG_BYTES
from dirtypixels_tf.training.config.schema import MAX_MESSAGE_CHARS

ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(9)
)  # 10**10 strings once expanded


@pytest.mark.parametrize("key", ["seed", "description"])
def test_an_alias_bomb_is_refused_before_it_expands(tmp_path, key):
    path = tmp_path / "bomb.yaml"
    path.write_text(ALIAS_BOMB + f"{key}: *j\n")
    start = time.monotonic()
    with pytest.raises(config_lib.ConfigError) as error:
        config_lib.load_config(str(path))
    assert time.monotonic() - start < 5
    assert "found alias *a: aliases are not allowed in config files" in str(error.value)
    assert len(str(error.value)) <= MAX_MESSAGE_CHARS + 60


def test_an_alias_in_an_override_is_refused():
    with pytest.raises(config_lib.ConfigError, match="aliases are not allowed"):
        config_lib.load_config(None, ["description=[&a x, *a]"])


def test_a_config_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "big.yaml"
    with open(path, "wb") as file:
        file.truncate(50 * 2**20)  # 50 MB, sparse: nothing to parse if the size is checked first
    start = time.monotonic()
    with pytest.raises(config_lib.ConfigError) as error:
        config_lib.load_config(str(path))
    assert time.monotonic() - start < 2
    assert f"a config file may be at most {MAX_CONFIG_BYTES} bytes; this one has {50 * 2**20}" in str(error.value)


def test_a_refusal_quotes_a_short_prefix_of_a_huge_value(tmp_path):
    path = tmp_path / "long.yaml"
    path.write_text("seed: " + "x" * 500_000 + "\n")
    with pytest.raises(config_lib.ConfigError) as error:
        config_lib.load_config(str(path))
    message = str(error.value)
    assert message.startswith("seed: ") and len(message) <= MAX_MESSAGE_CHARS + 60
    assert message.endswith("characters)")


def test_a_run_refused_at_its_data_leaves_no_run_directory(tmp_path):
    """Stage 1 of a two-stage config whose training folder does not exist: refused, and RUN_DIR (with its empty
    stage1) is not left behind."""
    missing = str(tmp_path / "no-such-folder")
    config = from_dict(
        tiny(
            model={"isp": "anscombe"},
            data={"source": "folder", "train_path": missing, "eval_path": missing},
            pretrain={"loss": {"kind": "l1"}},
        )
    )
    with pytest.raises(ValueError, match="must be an existing folder"):
        run_experiment(config, str(tmp_path / "run"), verbose=0, log=lambda line: None)
    assert not (tmp_path / "run").exists()
