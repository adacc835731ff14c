"""Custom Keras layers that saved models contain.

Each is registered as serializable so ``keras.saving.load_model(safe_mode=True)`` can
rebuild it in a fresh process once this module is imported; a ``Lambda`` layer would not
reload under safe_mode (docs/decisions.md, "Loading models safely"). Keep their ``get_config`` stable: saved models depend
on it.
"""

from __future__ import annotations

import keras
from keras import ops

PACKAGE = "transferlab"

# keras.applications.vgg16.preprocess_input ("caffe" mode) uses these BGR means.
_VGG_BGR_MEAN = (103.939, 116.779, 123.68)
# The backbones (registry.py) whose preprocess_input this layer implements.
_SCALES = ("vgg16", "mobilenet_v2")


@keras.saving.register_keras_serializable(package=PACKAGE)
class BackbonePreprocess(keras.layers.Layer):
    """The backbone's ``preprocess_input`` inside the model: raw RGB 0-255 pixels in.

    vgg16: RGB -> BGR and ImageNet mean subtraction, no scaling (caffe style).
    mobilenet_v2: scale to [-1, 1].
    """

    def __init__(self, backbone: str, **kwargs):
        super().__init__(**kwargs)
        if backbone not in _SCALES:
            raise ValueError(f"no preprocessing for backbone {backbone!r}")
        self.backbone = backbone

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if self.backbone == "vgg16":
            return ops.flip(x, axis=-1) - ops.convert_to_tensor(_VGG_BGR_MEAN, x.dtype)
        return x / 127.5 - 1.0

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "backbone": self.backbone}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ChannelShift(keras.layers.Layer):
    """ImageDataGenerator's ``channel_shift_range``; active only when training.

    Like ImageDataGenerator, one intensity in [-r, r] is added to every channel of an
    image and the result is clipped to that image's original min and max.
    """

    def __init__(self, intensity: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.intensity = float(intensity)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=False):
        if not training or self.intensity == 0:
            return inputs
        batch = ops.shape(inputs)[0]
        shift = keras.random.uniform((batch, 1, 1, 1), -self.intensity, self.intensity, seed=self.seed_generator)
        lo = ops.min(inputs, axis=(1, 2, 3), keepdims=True)
        hi = ops.max(inputs, axis=(1, 2, 3), keepdims=True)
        return ops.clip(inputs + ops.cast(shift, inputs.dtype), lo, hi)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "intensity": self.intensity, "seed": self.seed}


@keras.saving.register_keras_serializable(package=PACKAGE)
class SamplewiseStandardize(keras.layers.Layer):
    """``samplewise_center`` / ``samplewise_std_normalization``: per image, always on."""

    def __init__(self, center: bool = True, std_normalization: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.center = bool(center)
        self.std_normalization = bool(std_normalization)

    def call(self, inputs):
        x = inputs
        if self.center:
            x = x - ops.mean(x, axis=(1, 2, 3), keepdims=True)
        if self.std_normalization:
            # ImageDataGenerator divides by std + 1e-6 to survive flat images.
            x = x / (ops.std(x, axis=(1, 2, 3), keepdims=True) + 1e-6)
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "center": self.center, "std_normalization": self.std_normalization}


@keras.saving.register_keras_serializable(package=PACKAGE)
class FeaturewiseStandardize(keras.layers.Layer):
    """``featurewise_center`` / ``featurewise_std_normalization`` per channel, always on.

    The per-channel mean and std are fitted on the training images (``set_statistics``)
    and stored as non-trainable weights so they are saved with the model.
    """

    def __init__(self, center: bool = True, std_normalization: bool = False, channels: int = 3, **kwargs):
        super().__init__(**kwargs)
        self.center = bool(center)
        self.std_normalization = bool(std_normalization)
        self.channels = int(channels)
        self.mean = self.add_weight(shape=(self.channels,), initializer="zeros", trainable=False, name="mean")
        self.std = self.add_weight(shape=(self.channels,), initializer="ones", trainable=False, name="std")

    def set_statistics(self, mean, std):
        """Store per-channel statistics fitted on the training images."""
        self.mean.assign(ops.convert_to_tensor(mean, "float32"))
        self.std.assign(ops.convert_to_tensor(std, "float32"))

    def call(self, inputs):
        x = inputs
        if self.center:
            x = x - ops.cast(self.mean, x.dtype)
        if self.std_normalization:
            x = x / (ops.cast(self.std, x.dtype) + 1e-6)
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "center": self.center,
            "std_normalization": self.std_normalization,
            "channels": self.channels,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class TemperatureScaling(keras.layers.Layer):
    """Calibrated probabilities from a classifier's probabilities: softmax(log p / T), and for a
    single sigmoid unit sigmoid(logit p / T). The temperature is fitted on validation after
    training (workers.ml.calibration) and saved with the model, so predict returns calibrated
    probabilities. T = 1 changes nothing; the most probable class never changes.
    """

    EPS = 1e-7

    def __init__(self, temperature: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.temperature = float(temperature)

    def call(self, inputs):
        p = ops.clip(ops.cast(inputs, "float32"), self.EPS, 1.0 - self.EPS)
        if inputs.shape[-1] == 1:
            logit = ops.log(p) - ops.log(1.0 - p)
            return ops.sigmoid(logit / self.temperature)
        return ops.softmax(ops.log(p) / self.temperature, axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}
