"""The model's layers as model.summary() would show them, with what trained and what stayed frozen."""

import pytest

from workers.ml.predict import LoadedModel
from workers.ml.summary import model_summary

pytestmark = pytest.mark.slow


def rows_by_name(summary):
    return {row["name"]: row for row in summary["layers"]}


def test_a_bottleneck_models_summary_shows_the_backbone_frozen_and_the_head_trained(bottleneck_run):
    result, _ = bottleneck_run
    summary = result.model_info["summary"]
    rows = rows_by_name(summary)
    assert rows["vgg16"]["state"] == "frozen" and rows["vgg16"]["params"] == 14_714_688
    assert rows["block5_conv3"] == {
        "name": "block5_conv3", "type": "Conv2D", "output_shape": "(None, 2, 2, 512)", "params": 2_359_808,
        "trainable_params": 0, "state": "frozen", "depth": 1,
    }  # fmt: skip
    assert rows["head"]["state"] in ("trainable", "partly frozen") and rows["head"]["trainable_params"] > 0
    assert rows["calibration"]["state"] == "no weights"
    assert summary["trainable_params"] == rows["head"]["trainable_params"]
    assert summary["total_params"] == summary["trainable_params"] + summary["non_trainable_params"]
    assert summary["file_bytes"] == result.model_bytes
    # The same counts as Keras's own for the whole model.
    assert summary["total_params"] == LoadedModel.load(result.model_dir)._model.count_params()


def test_the_small_convnet_trains_everything_with_weights():
    from keras import Input, Model, layers

    inputs = Input((8, 8, 3))
    model = Model(inputs, layers.Dense(2)(layers.Flatten()(layers.Conv2D(4, 3, name="c")(inputs))))
    summary = model_summary(model)
    rows = rows_by_name(summary)
    assert rows["c"] == {"name": "c", "type": "Conv2D", "output_shape": "(None, 6, 6, 4)", "params": 112,
                         "trainable_params": 112, "state": "trainable", "depth": 0}  # fmt: skip
    assert summary["total_params"] == summary["trainable_params"] == model.count_params()
