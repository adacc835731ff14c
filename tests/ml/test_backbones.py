import numpy as np
import pytest

from workers.ml.backbones import (
    build_base,
    build_preprocess,
    resolve_weights,
    set_trainable_blocks,
    weights_file_name,
)
from workers.ml.errors import WeightsError
from workers.ml.layers import BackbonePreprocess
from workers.ml.options import OPTIONS
from workers.ml.registry import NAMES, SPECS


def test_it_names_the_missing_weights_file_and_tl_weights_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(WeightsError) as info:
        resolve_weights("vgg16", "imagenet", tmp_path)
    assert "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in str(info.value)
    assert "TL_WEIGHTS_DIR" in str(info.value)


def test_it_uses_a_weights_file_from_tl_weights_dir(tmp_path):
    (tmp_path / weights_file_name("vgg16")).write_bytes(b"x")
    assert resolve_weights("vgg16", "imagenet", tmp_path) == tmp_path / weights_file_name("vgg16")
    assert resolve_weights("vgg16", "none", tmp_path) is None


def test_it_preprocesses_vgg16_caffe_style_and_mobilenet_to_unit_range():
    pixel = np.array([[[[10.0, 20.0, 30.0]]]], np.float32)
    vgg = np.asarray(BackbonePreprocess("vgg16")(pixel))
    np.testing.assert_allclose(vgg[0, 0, 0], [30 - 103.939, 20 - 116.779, 10 - 123.68], atol=1e-4)
    mobile = np.asarray(BackbonePreprocess("mobilenet_v2")(np.array([[[[0.0, 127.5, 255.0]]]])))
    np.testing.assert_allclose(mobile[0, 0, 0], [-1, 0, 1], atol=1e-6)


def test_it_unfreezes_only_the_named_blocks():
    base = build_base("vgg16", (32, 32), None, seed=0)
    trainable = set_trainable_blocks(base, "vgg16", ("block5",))
    assert trainable == ["block5_conv1", "block5_conv2", "block5_conv3"]
    assert not base.get_layer("block4_conv3").trainable


def test_it_builds_the_same_random_base_for_the_same_seed():
    a = build_base("mobilenet_v2", (32, 32), None, seed=5).get_weights()[0]
    b = build_base("mobilenet_v2", (32, 32), None, seed=5).get_weights()[0]
    c = build_base("mobilenet_v2", (32, 32), None, seed=6).get_weights()[0]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("name", NAMES)
def test_each_registry_entry_states_what_keras_builds(name):
    """workers/ml/registry.py holds every non-Keras fact about a backbone (memory estimates, feature
    shapes and blocks are computed from it): each must agree with the base Keras builds."""
    spec = SPECS[name]
    base = build_base(name, (64, 64), None, seed=0)
    build_preprocess(name)  # refuses a backbone it has no preprocessing for
    assert base.count_params() == spec.params
    side = -(-64 // spec.stride)
    assert tuple(base.output_shape[1:]) == (side, side, spec.channels)
    layers = [layer.name for layer in base.layers]
    for block, prefixes in spec.blocks.items():
        assert any(layer.startswith(prefixes) for layer in layers), f"{name}: no layer of block {block!r}"
    assert spec.default_unfreeze in spec.blocks
    assert name in next(o for o in OPTIONS if o.key == "backbone").choices
