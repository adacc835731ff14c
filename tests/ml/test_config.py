import os
import subprocess
import sys
from pathlib import Path

import pytest

from workers.ml.config import config_to_dict, parse_config
from workers.ml.errors import ConfigError


def error_for(data):
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return str(info.value)


def test_it_applies_mode_defaults():
    assert parse_config({"mode": "finetune"}).optimizer == "sgd"
    assert parse_config({"mode": "finetune"}).learning_rate == 1e-4
    assert parse_config({"mode": "finetune"}).momentum == 0.9
    assert parse_config({"mode": "bottleneck"}).optimizer == "rmsprop"
    assert parse_config({"mode": "scratch"}).augmentation.fill_mode == "nearest"


def test_it_names_unknown_keys():
    assert (
        error_for({"mode": "scratch", "augmentation": {"rotaton_range": 5}})
        == "augmentation.rotaton_range: unknown option"
    )
    assert error_for({"mode": "scratch", "colour": 1}) == "colour: unknown option"
    assert error_for({"mode": "scratch", "head": {"unit": 3}}) == "head.unit: unknown option"


def test_it_names_out_of_range_values():
    assert error_for({"mode": "scratch", "augmentation": {"rotation_range": 400}}).startswith(
        "augmentation.rotation_range: must be in [0, 360]"
    )
    assert error_for({"mode": "scratch", "epochs": 0}).startswith("epochs:")
    assert error_for({"mode": "scratch", "image_size": [16, 16]}).startswith("image_size:")
    assert error_for({"mode": "scratch", "head": {"dropout": 1}}).startswith("head.dropout:")
    assert error_for({"mode": "nope"}).startswith("mode:")
    assert error_for({"mode": "finetune", "unfreeze": "block9"}).startswith("unfreeze:")
    assert error_for({"mode": "scratch", "augmentation": {"fill_mode": "mirror"}}).startswith("augmentation.fill_mode:")
    assert error_for({"mode": "scratch", "augmentation": {"horizontal_flip": 1}}).startswith(
        "augmentation.horizontal_flip:"
    )


def test_it_rejects_zca_whitening_clearly():
    message = error_for({"mode": "scratch", "augmentation": {"zca_whitening": True}})
    assert message.startswith("augmentation.zca_whitening:")
    assert "not supported" in message


def test_it_rejects_rescale_in_front_of_a_pretrained_backbone():
    message = error_for({"mode": "finetune", "augmentation": {"rescale": 1 / 255}})
    assert message.startswith("augmentation.rescale: not allowed in finetune mode")
    assert parse_config({"mode": "scratch", "augmentation": {"rescale": 0.5}}).augmentation.rescale


def test_it_rejects_augmentation_in_bottleneck_mode():
    assert error_for({"mode": "bottleneck", "augmentation": {"horizontal_flip": True}}).startswith(
        "augmentation.horizontal_flip: bottleneck mode"
    )


def test_it_accepts_and_ignores_base_experiment():
    assert parse_config({"mode": "finetune", "base_experiment": 7}).mode == "finetune"


def test_it_round_trips_through_a_dict():
    cfg = parse_config(
        {
            "mode": "scratch",
            "image_size": 64,
            "early_stopping": {"patience": 3},
            "augmentation": {"zoom_range": [0.8, 1.3], "rotation_range": 10, "rescale": 0.5},
            "head": {"pooling": "avg"},
            "unfreeze": ["block4", "block5"],
        }
    )
    assert parse_config(config_to_dict(cfg)) == cfg
    assert cfg.augmentation.zoom_bounds == (0.8, 1.3)
    assert cfg.early_stopping_patience == 3


def test_it_does_not_import_tensorflow():
    code = "import sys, workers.ml.config, workers.ml.errors; print('tensorflow' in sys.modules)"
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )
    assert out.stdout.strip() == "False"
