"""TF Serving deployment files: parsed with TF Serving's own protos, batching rules checked, repo copy in sync."""

import os
import re

import pytest
import yaml

from dirtypixels_tf import cli
from dirtypixels_tf.serving import config

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_serving_config_command_writes_files_that_parse(tmp_path, capsys):
    out = tmp_path / "serving"
    argv = [
        "serving-config",
        "--model-name",
        "joint",
        "--base-path",
        str(tmp_path / "models" / "joint"),
        "--out",
        str(out),
    ]
    assert cli.main(argv + ["--version-label", "stable=3", "--max-batch-size", "24", "--num-versions", "2"]) == 0
    assert sorted(os.listdir(out)) == sorted(config.FILES)
    checked = config.check_serving_config(out)
    (model,) = checked["models.config"].model_config_list.config  # parsed by model_server_config_pb2
    assert (model.name, model.base_path, model.model_platform) == ("joint", "/models/joint", "tensorflow")
    assert model.model_version_policy.latest.num_versions == 2
    assert dict(model.version_labels) == {"stable": 3}
    batching = checked["batching_parameters.txt"]
    assert batching["max_batch_size"] == 24 and batching["allowed_batch_sizes"] == [1, 2, 4, 8, 16, 24]
    assert checked["monitoring.config"] == {"enable": True, "path": "/monitoring/prometheus/metrics"}
    service = checked["docker-compose.yml"]["services"]["tf-serving"]
    assert service["image"] == "tensorflow/serving:latest-gpu"
    assert service["ports"] == ["8500:8500", "8501:8501"]
    assert "../models/joint:/models/joint:ro" in service["volumes"]
    for flag in (
        "--model_config_file=/config/models.config",
        "--batching_parameters_file=/config/batching_parameters.txt",
        "--monitoring_config_file=/config/monitoring.config",
        "--enable_batching=true",
    ):
        assert flag in service["command"]
    for flag in service["command"]:  # every file the server is pointed at is one that was written
        if flag.split("=")[-1].startswith("/config/"):
            assert os.path.isfile(out / flag.split("/config/")[1])
    assert service["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert cli.main(["serving-config", "--check", "--out", str(out)]) == 0
    assert "valid" in capsys.readouterr().out


def test_the_repository_serving_directory_is_what_the_command_writes(tmp_path):
    """serving/ was written from the repository root by `dirtypixels serving-config --model-name dirtypixels
    --base-path runs/models/dirtypixels --out serving`; the same layout under tmp_path must give the same files."""
    expected = config.write_serving_config(tmp_path / "serving", "dirtypixels", tmp_path / "runs/models/dirtypixels")
    for name in config.FILES:
        with open(os.path.join(REPO_ROOT, "serving", name), encoding="utf-8") as committed:
            with open(expected[name], encoding="utf-8") as written:
                assert committed.read() == written.read(), name
    config.check_serving_config(os.path.join(REPO_ROOT, "serving"))


GOOD = "max_batch_size { value: 16 }\nbatch_timeout_micros { value: 0 }\nallowed_batch_sizes: [4, 8, 16]\n"


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "max_batch_size: 16\n",
            "line 1, column 17: max_batch_size is a google.protobuf.Int64Value message: write "
            "`max_batch_size { value: 16 }`",
        ),
        ("max_batch_size { value: 16 }\nallowed_batch_sizes: 8\nallowed_batch_sizes: 4\n", "strictly increasing"),
        ("max_batch_size { value: 16 }\nallowed_batch_sizes: [4, 8]\n", "must equal max_batch_size (16)"),
        ("allowed_batch_sizes: [4, 8]\n", "must equal max_batch_size (1000)"),
        ("max_batch_size { value: 0 }\n", "max_batch_size must be >= 1"),
        ("batch_timeout_micros { value: -1 }\n", "batch_timeout_micros must be >= 0"),
        ("num_batch_threads { value: 2.5 }\n", "'num_batch_threads { value: 2.5 }': Couldn't parse integer: 2.5"),
        (
            "max_batch_size { value: 8 }\nmax_batch_size { value: 8 }\n",
            'line 2, column 16: Message type "tensorflow.serving.BatchingParameters" should not have multiple '
            '"max_batch_size" fields',
        ),
        (
            "pad_variable_length_inputs: true\npad_variable_length_inputs: false\n",
            'multiple "pad_variable_length_inputs"',
        ),
        ("pad_variable_length_inputs: maybe\n", 'pad_variable_length_inputs: maybe\': Expected "true" or "false"'),
        ("max_batch_sise { value: 8 }\n", 'has no field named "max_batch_sise"'),
        ("max_batch_size { value: 8 ", 'line 1, column 25: Expected "}"'),
        ("max_batch_size { value: 8 } %\n", "Expected identifier or number, got %"),
        ("thread_pool_name { value: 3 }\n", "'thread_pool_name { value: 3 }': Expected string but found: '3'"),
        ('thread_pool_name: "gpu"\n', 'write `thread_pool_name { value: "gpu" }`'),
        ("max_batch_size { value: 2 }\nallowed_batch_sizes: [0, 2]\n", "allowed_batch_sizes must be >= 1"),
    ],
)
def test_broken_batching_files_fail_the_rule_check(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        config.parse_batching_parameters(text)


def test_batching_parser_reads_the_text_format_variants():
    assert config.parse_batching_parameters(GOOD) == {
        "max_batch_size": 16,
        "batch_timeout_micros": 0,
        "allowed_batch_sizes": [4, 8, 16],
    }
    text = (
        '# a comment\nmax_batch_size: { value: 4 }, num_batch_threads <value: 2>; thread_pool_name { value: "gpu" }\n'
    )
    text += "pad_variable_length_inputs: True\nallowed_batch_sizes: 2 allowed_batch_sizes: 4\n"
    parsed = config.parse_batching_parameters(text)
    assert parsed == {
        "max_batch_size": 4,
        "num_batch_threads": 2,
        "thread_pool_name": "gpu",
        "pad_variable_length_inputs": True,
        "allowed_batch_sizes": [2, 4],
    }


def test_the_written_files_parse_back_to_their_values():
    for batching in (config.Batching(), config.Batching(8, 0, 1, 1, (2, 8), pad_variable_length_inputs=True)):
        parsed = config.parse_batching_parameters(batching.to_text())
        wrapped = ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads")
        expected = {name: getattr(batching, name) for name in wrapped}
        expected["allowed_batch_sizes"] = list(batching.allowed_batch_sizes)
        if batching.pad_variable_length_inputs:  # proto3 bool: given when true
            expected["pad_variable_length_inputs"] = True
        assert parsed == expected
    assert config.parse_monitoring_config(config.monitoring_config_text()) == {
        "enable": True,
        "path": config.PROMETHEUS_PATH,
    }


def test_broken_models_and_monitoring_configs_fail():
    with pytest.raises(ValueError, match="models.config"):
        config.parse_models_config('model_config_list { config { name: "a" base_pth: "/m" } }')
    with pytest.raises(ValueError, match="needs a name and a base_path"):
        config.parse_models_config('model_config_list { config { name: "a" model_platform: "tensorflow" } }')
    with pytest.raises(ValueError, match="must have model_platform"):
        config.parse_models_config('model_config_list { config { name: "a" base_path: "/m" model_platform: "onnx" } }')
    labelled = (
        'model_config_list { config { name: "a" base_path: "/m" model_platform: "tensorflow" '
        'model_version_policy { specific { versions: 1 } } version_labels { key: "canary" value: 2 } } }'
    )
    with pytest.raises(ValueError, match="include every labelled version"):
        config.parse_models_config(labelled)
    with pytest.raises(ValueError, match='has no field named "enable"'):
        config.parse_monitoring_config("enable: true\n")
    with pytest.raises(ValueError, match="exactly one `prometheus_config"):
        config.parse_monitoring_config("# nothing\n")
    with pytest.raises(ValueError, match='multiple "prometheus_config"'):
        config.parse_monitoring_config("prometheus_config { enable: true }\nprometheus_config { enable: true }\n")
    with pytest.raises(ValueError, match="prometheus_config takes"):
        config.parse_monitoring_config('prometheus_config { enable: true path: "metrics" }')
    with pytest.raises(ValueError, match="model_name must be"):
        config.models_config_text("my model")


def test_check_reports_a_missing_file(tmp_path):
    config.write_serving_config(tmp_path, "m", tmp_path / "models" / "m")
    os.remove(tmp_path / "monitoring.config")
    with pytest.raises(ValueError, match="monitoring.config: missing"):
        config.check_serving_config(tmp_path)
    compose = yaml.safe_load(open(tmp_path / "docker-compose.yml"))
    assert compose["services"]["tf-serving"]["volumes"][1] == "./models/m:/models/m:ro"
