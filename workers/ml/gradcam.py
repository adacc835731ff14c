"""Grad-CAM: where in an image the model looked for the class it answered (Selvaraju et al., 2017).

The heatmap is the ReLU of the last convolutional feature maps weighted by the average gradient
of the class's logit over each map, upsampled to the image. The logit is taken before the
softmax and the calibration: a confident answer's probability is 1.0 in float32, and its
gradient is exactly zero.

The "last convolutional layer" is found, not named per backbone: the last layer with a 4-D
output that is not pooling, inside the backbone for transfer models (VGG16's block5_conv3,
MobileNetV2's out_relu) or in the model itself for the small convnet. The model is run in two
parts, up to that layer and from it, with the gradient taken between them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from workers.ml.errors import MLError

_POOLING = ("Pooling", "Flatten")


@dataclass(frozen=True)
class Explanation:
    class_index: int
    heatmap: np.ndarray  # (height, width) float32 in [0, 1], at the model's input size
    layer: str


def _last_conv(layers) -> str | None:
    name = None
    for layer in layers:
        shape = getattr(layer, "output", None) is not None and layer.output.shape
        if shape and len(shape) == 4 and not any(p in type(layer).__name__ for p in _POOLING):
            name = layer.name
    return name


class GradCam:
    """Grad-CAM for one loaded model (workers.ml.predict.LoadedModel's Keras model)."""

    def __init__(self, model):
        import keras

        self.model = model
        top = list(model.layers)
        nested = [
            layer
            for layer in top
            if isinstance(layer, keras.Model) and any("Conv" in type(inner).__name__ for inner in layer.layers)
        ]
        if nested:  # a transfer model: preprocess -> backbone -> head -> calibration
            backbone = nested[-1]
            name = _last_conv(backbone.layers)
            index = top.index(backbone)
            self._before = top[1:index]
            self._front = keras.Model(backbone.inputs, [backbone.get_layer(name).output, backbone.output])
            self._chain, self._dense, self._head = _to_output_layer(top[index + 1 :])
        else:  # the small convnet: one flat graph
            name = _last_conv(top[1:])
            if name is None:
                raise MLError("the model has no convolutional layer to explain")
            self._dense = _last_dense(top)
            self._before, self._chain, self._head = None, [], None
            self._front = keras.Model(model.inputs, [model.get_layer(name).output, self._dense.input])
        if name is None:
            raise MLError("the model's backbone has no convolutional layer to explain")
        self.layer = name

    def _logits(self, batch):
        """(last conv maps, the output layer's logits), both on the gradient tape's path. The
        logits come before the softmax and the calibration, which saturate for confident answers."""
        x = batch
        if self._before is None:
            maps, pre = self._front(x, training=False)
        else:
            for layer in self._before:
                x = layer(x, training=False)
            maps, pre = self._front(x, training=False)
            for layer in self._chain:
                pre = layer(pre, training=False)
            if self._head is not None:
                pre = self._head(pre, training=False)
        logits = pre @ self._dense.kernel + self._dense.bias
        if logits.shape[-1] == 1:  # one sigmoid unit z: class 1 scores z, class 0 scores -z
            import tensorflow as tf

            logits = tf.concat([-logits, logits], axis=-1)
        return maps, logits

    def explain(self, batch: np.ndarray, class_indices: list[int] | None = None) -> list[Explanation]:
        """Heatmaps of a uint8 (N, H, W, 3) batch, for the given classes or each image's top class."""
        import tensorflow as tf

        x = tf.convert_to_tensor(np.asarray(batch, np.float32))
        with tf.GradientTape() as tape:
            maps, logits = self._logits(x)
            chosen = class_indices if class_indices is not None else tf.argmax(logits, axis=-1).numpy().tolist()
            # The class's log-odds against the others, from the logits: what tells this class apart.
            mask = tf.one_hot(chosen, logits.shape[-1], on_value=True, off_value=False)
            others = tf.reduce_logsumexp(tf.where(mask, tf.fill(tf.shape(logits), -1e9), logits), axis=-1)
            score = tf.gather(logits, chosen, axis=1, batch_dims=1) - others
        grads = tape.gradient(score, maps)
        if grads is None:
            raise MLError(f"no gradient reaches {self.layer}: the model cannot be explained with Grad-CAM")
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        cams = tf.nn.relu(tf.reduce_sum(weights * maps, axis=-1)).numpy()
        height, width = batch.shape[1:3]
        return [
            Explanation(int(c), _upsample(cam, (height, width)), self.layer)
            for c, cam in zip(chosen, cams, strict=True)
        ]


def _to_output_layer(after):
    """The layers between the backbone and the output Dense layer: (plain layers run first, the
    output Dense, a sub-model from the nested head's input to that Dense's input or None)."""
    import keras

    for i in range(len(after) - 1, -1, -1):
        layer = after[i]
        if type(layer).__name__ == "Dense":
            return after[:i], layer, None
        if isinstance(layer, keras.Model) and any(type(inner).__name__ == "Dense" for inner in layer.layers):
            dense = _last_dense(layer.layers)
            return after[:i], dense, keras.Model(layer.inputs, dense.input)
    raise MLError("the model has no dense output layer to explain")


def _last_dense(layers):
    dense = [layer for layer in layers if type(layer).__name__ == "Dense"]
    if not dense:
        raise MLError("the model has no dense output layer to explain")
    return dense[-1]


def _upsample(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    image = Image.fromarray(cam.astype(np.float32), mode="F").resize((size[1], size[0]), Image.BILINEAR)
    heat = np.asarray(image, np.float32)
    # Min-max: a map that is positive everywhere (evidence from the background too) still shows where
    # it is strongest.
    low, high = float(heat.min()), float(heat.max())
    return (heat - low) / (high - low) if high > low else np.zeros_like(heat)


def _colormap(values: np.ndarray) -> np.ndarray:
    """Dark blue -> red -> yellow, a perceptually ordered ramp readable on most photos."""
    stops = np.array([[0, 0, 80], [40, 0, 160], [200, 30, 60], [250, 140, 0], [255, 240, 60]], np.float32)
    position = values * (len(stops) - 1)
    low = np.floor(position).astype(int).clip(0, len(stops) - 2)
    t = (position - low)[..., None]
    return (stops[low] * (1 - t) + stops[low + 1] * t).astype(np.uint8)


def overlay_png(image: np.ndarray, heatmap: np.ndarray, *, alpha: float = 0.45) -> bytes:
    """The heatmap over the image the model saw (uint8 H x W x 3), as PNG bytes."""
    colours = _colormap(heatmap).astype(np.float32)
    weight = (alpha * heatmap)[..., None]
    blended = np.asarray(image, np.float32) * (1 - weight) + colours * weight
    buffer = io.BytesIO()
    Image.fromarray(blended.clip(0, 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()
