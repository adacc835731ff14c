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
    assert error_for({"mode": "bottleneck", "head": {"unit": 3}}) == "head.unit: unknown option"


def test_it_names_out_of_range_values():
    assert error_for({"mode": "scratch", "augmentation": {"rotation_range": 400}}).startswith(
        "augmentation.rotation_range: must be in [0, 360]"
    )
    assert error_for({"mode": "scratch", "epochs": 0}).startswith("epochs:")
    assert error_for({"mode": "scratch", "image_size": [16, 16]}).startswith("image_size:")
    assert error_for({"mode": "bottleneck", "head": {"dropout": 1}}).startswith("head.dropout:")
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


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"mode": "scratch", "head": {"units": 64}}, "head: not used in scratch mode"),
        ({"mode": "scratch", "backbone": "vgg16"}, "backbone: not used in scratch mode (scratch mode trains"),
        ({"mode": "scratch", "weights": "none"}, "weights: not used in scratch mode (scratch mode starts"),
        ({"mode": "finetune", "weights": "imagenet"}, "weights: not used in finetune mode (a fine-tune continues"),
        ({"mode": "finetune", "head": {"units": 8}}, "head: not used in finetune mode"),
        ({"mode": "bottleneck", "unfreeze": "block5"}, "unfreeze: not used in bottleneck mode"),
        ({"mode": "scratch", "unfreeze": "block5"}, "unfreeze: not used in scratch mode"),
        ({"mode": "bottleneck", "base_experiment": 3}, "base_experiment: not used in bottleneck mode"),
        ({"mode": "bottleneck", "momentum": 0.5}, "momentum: only the sgd optimizer uses momentum"),
        ({"mode": "finetune", "optimizer": "adam", "momentum": 0.5}, "momentum: only the sgd optimizer"),
    ],
)
def test_it_refuses_options_the_mode_would_ignore(data, expected):
    assert error_for(data).startswith(expected)


def test_every_backbone_fine_tunes_its_last_block_by_default():
    assert parse_config({"mode": "finetune", "backbone": "vgg16"}).unfreeze == ("block5",)
    assert parse_config({"mode": "finetune", "backbone": "mobilenet_v2"}).unfreeze == ("top",)


def test_it_refuses_settings_that_would_exhaust_a_training_worker():
    from workers.ml.config import check_training_memory

    huge = parse_config(
        {"mode": "bottleneck", "image_size": 1024, "batch_size": 1024, "head": {"units": 8192}, "weights": "none"}
    )
    with pytest.raises(ConfigError) as caught:
        check_training_memory(huge, 16 * 1024**3)
    assert caught.value.key == "head.units"
    # 524,288 features x 8192 units x 4 bytes x 4 copies = 64 GiB; 32 x 128 x 1024² x 4 bytes = 16 GiB.
    assert "would need about 82.1 GiB" in str(caught.value)
    assert "head weights 64.0 GiB, feature extraction 16.0 GiB" in str(caught.value)
    assert "budget of 16.0 GiB (TL_TRAINING_MEMORY_BYTES)" in str(caught.value)
    blog = parse_config({"mode": "finetune", "augmentation": {"shear_range": 11.46}})
    assert check_training_memory(blog, 16 * 1024**3) < 1024**3


@pytest.mark.parametrize(
    "data",
    [
        {
            "mode": "scratch",
            "image_size": 64,
            "early_stopping": {"patience": 3},
            "augmentation": {"zoom_range": [0.8, 1.3], "rotation_range": 10, "rescale": 0.5},
        },
        {"mode": "bottleneck", "head": {"pooling": "avg"}, "weights": "none", "optimizer": "sgd", "momentum": 0.5},
        {"mode": "finetune", "unfreeze": ["block4", "block5"], "augmentation": {"shear_range": 11.46}},
    ],
)
def test_it_round_trips_through_a_dict(data):
    cfg = parse_config(data)
    assert parse_config(config_to_dict(cfg)) == cfg


def test_it_round_trips_zoom_bounds_and_patience():
    cfg = parse_config(
        {"mode": "scratch", "early_stopping": {"patience": 3}, "augmentation": {"zoom_range": [0.8, 1.3]}}
    )
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


def test_it_collects_every_error_at_once_with_collect():
    from workers.ml.errors import ConfigErrors

    bad = {
        "mode": "bottleneck",
        "epochs": 0,
        "learning_rate": 2,
        "momentum": 0.5,
        "bogus": 1,
        "head": {"units": 0},
        "augmentation": {"rotation_range": 400, "horizontal_flip": True, "rescale": 0.5},
    }
    with pytest.raises(ConfigErrors) as caught:
        parse_config(bad, collect=True)
    found = {e.key: e.message for e in caught.value.errors}
    assert found == {
        "bogus": "unknown option",
        "epochs": "must be in [1, 1000], got 0",
        "learning_rate": "must be in (0, 1], got 2",
        "momentum": "only the sgd optimizer uses momentum (this config uses rmsprop); remove it",
        "head.units": "must be in [1, 8192], got 0",
        "augmentation.rotation_range": "must be in [0, 360], got 400",
        "augmentation.horizontal_flip": "bottleneck mode computes features once, so it cannot augment; "
        "use finetune or scratch mode for augmentation",
        "augmentation.rescale": "not allowed in bottleneck mode: the backbone applies its own preprocessing to raw "
        "0-255 pixels; use it in scratch mode only",
    }
    # Without collect the first one is raised alone, as before.
    with pytest.raises(ConfigError) as first:
        parse_config(bad)
    assert not isinstance(first.value, ConfigErrors) and first.value.key == "bogus"
