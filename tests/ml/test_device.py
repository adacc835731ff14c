import json

import pytest
import tensorflow as tf
from conftest import tiny_config

from workers.ml.config import config_to_dict, parse_config
from workers.ml.device import use_device
from workers.ml.errors import ConfigError, MLError
from workers.ml.train import train

# This machine has no GPU: the tests show what a CPU-only worker does with each device.
no_gpu = pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")), reason="needs a machine without a GPU")


def test_device_defaults_to_auto_and_is_kept_in_the_stored_config():
    assert parse_config({"mode": "scratch"}).device == "auto"
    assert config_to_dict(parse_config({"mode": "bottleneck", "device": "gpu"}))["device"] == "gpu"


def test_it_refuses_an_unknown_device_naming_the_key():
    with pytest.raises(ConfigError, match=r"^device: must be one of auto, cpu, gpu, got 'tpu'$"):
        parse_config({"mode": "scratch", "device": "tpu"})


@no_gpu
def test_a_gpu_experiment_fails_clearly_where_tensorflow_sees_no_gpu(two_class_dir, tmp_path):
    config = tiny_config("scratch", epochs=1, device="gpu")
    with pytest.raises(MLError, match=r"asks for a GPU \(device: gpu\) but TensorFlow sees none on this worker"):
        train(
            config=config,
            dataset_dir=two_class_dir,
            output_dir=tmp_path / "model",
            cache_dir=tmp_path,
            dataset_hash="h",
        )
    assert not (tmp_path / "model").exists()


@no_gpu
def test_a_cpu_experiment_trains_with_no_gpu_visible_and_auto_uses_the_cpu_here(two_class_dir, tmp_path):
    assert use_device("auto") == "cpu"
    config = tiny_config("scratch", epochs=1, device="cpu")
    result = train(
        config=config, dataset_dir=two_class_dir, output_dir=tmp_path / "m", cache_dir=tmp_path, dataset_hash="h"
    )
    assert tf.config.get_visible_devices("GPU") == []
    assert json.loads((result.model_dir / "model.json").read_text())["config"]["device"] == "cpu"


def test_use_device_refuses_a_device_it_does_not_know():
    with pytest.raises(MLError, match="device must be auto, cpu or gpu, got 'tpu'"):
        use_device("tpu")
