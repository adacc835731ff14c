"""FusedRMSprop: Keras's RMSprop formula in TensorFlow's one fused kernel (docs/decisions.md, "RMSprop in one kernel")."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from workers.ml.models import FusedRMSprop


def _trained(optimizer, steps=40):
    """A small dense model after `steps` full-batch steps of `optimizer` on fixed random data."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((64,))
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Dense(32, activation="relu")(inputs)))
    x = np.random.default_rng(0).normal(size=(128, 64)).astype(np.float32)
    y = (x[:, :1] > 0).astype(np.float32)
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(x, y, batch_size=128, epochs=steps, verbose=0, shuffle=False)
    return model.get_weights()


def test_the_fused_kernel_is_what_runs():
    optimizer = FusedRMSprop(1e-3)
    _trained(optimizer, steps=2)
    # Keras's own update never writes a momentum slot at momentum 0; the kernel writes the last increment.
    slots = [keras.ops.convert_to_numpy(v) for v in optimizer._fused_momentums]
    assert slots and all(np.abs(slot).max() > 0 for slot in slots)


@pytest.mark.parametrize("options", [{}, {"momentum": 0.9}, {"rho": 0.5, "epsilon": 1e-3}], ids=str)
def test_it_trains_what_kerass_rmsprop_trains(options):
    expected = _trained(keras.optimizers.RMSprop(1e-3, **options))
    fused = _trained(FusedRMSprop(1e-3, **options))
    initial = _trained(keras.optimizers.SGD(0.0), steps=1)
    for got, want, start in zip(fused, expected, initial, strict=True):
        np.testing.assert_allclose(got, want, atol=2e-6)
        assert np.abs(want - start).max() > 1e-3  # the weights did move: the comparison means something


def test_centered_rmsprop_and_sparse_gradients_keep_kerass_update():
    np.testing.assert_array_equal(
        np.concatenate([w.ravel() for w in _trained(FusedRMSprop(1e-3, centered=True))]),
        np.concatenate([w.ravel() for w in _trained(keras.optimizers.RMSprop(1e-3, centered=True))]),
    )
    table = keras.Variable(np.ones((4, 2), np.float32))
    optimizer = FusedRMSprop(0.1)
    optimizer.build([table])
    sparse = tf.IndexedSlices(tf.constant([[1.0, 1.0]]), tf.constant([2]), tf.constant([4, 2]))
    optimizer.apply_gradients([(sparse, table)])
    moved = np.abs(keras.ops.convert_to_numpy(table) - 1.0).max(axis=1)
    assert moved[2] > 0.1 and moved[[0, 1, 3]].max() == 0.0
