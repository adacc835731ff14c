"""The backbone registry: every fact about a backbone that is not Keras code, in one place.

TensorFlow-free, so that config validation, the form and the API read it in the web process;
workers/ml/backbones.py adds the Keras constructor for each name. Adding a backbone means one
entry here, its constructor there, and its preprocessing in layers.BackbonePreprocess.
"""

from __future__ import annotations

from dataclasses import dataclass

# MobileNetV2 has ImageNet weights for these input sizes only; Keras falls back to 224.
_MOBILENET_ROWS = (96, 128, 160, 192, 224)


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    label: str  # how pages name it ("VGG16")
    min_size: int  # smallest image side the base accepts
    blocks: dict  # unfreezable block name -> layer-name prefixes
    default_unfreeze: str  # the last block: what fine-tuning trains unless told otherwise
    preprocessing: str  # what its preprocess_input (inside the saved model) does
    stride: int  # output feature map = ceil(side / stride)
    channels: int  # ... with this many channels
    params: int  # weights of the base without its top
    # float32 values kept per input pixel by one image: a forward pass's peak ("infer"), and
    # every activation kept for the backward pass ("train"); for memory estimates.
    activations: dict
    linear: bool  # a chain of layers that can be cut at one layer (fine-tuning's frozen prefix)

    def weights_file(self, image_size: tuple[int, int] = (224, 224)) -> str:
        """Keras's own file name for the no-top ImageNet weights."""
        if self.name == "vgg16":
            return "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
        rows = image_size[0] if image_size[0] in _MOBILENET_ROWS else 224
        return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5"


_MOBILENET_BLOCKS = {"stem": ("Conv1", "bn_Conv1", "expanded_conv_")}
_MOBILENET_BLOCKS.update({f"block_{i}": (f"block_{i}_",) for i in range(1, 17)})
_MOBILENET_BLOCKS["top"] = ("Conv_1", "out_relu")

SPECS: dict[str, BackboneSpec] = {
    "vgg16": BackboneSpec(
        name="vgg16",
        label="VGG16",
        min_size=32,
        blocks={f"block{i}": (f"block{i}_",) for i in range(1, 6)},
        default_unfreeze="block5",
        preprocessing="vgg16 preprocess_input (caffe: RGB->BGR, ImageNet mean subtracted, no scaling)",
        stride=32,
        channels=512,
        params=14_714_688,
        # 2x64 + 64/4 + 2x128/4 + ... channels, summed over its blocks.
        activations={"infer": 128, "train": 301},
        linear=True,
    ),
    "mobilenet_v2": BackboneSpec(
        name="mobilenet_v2",
        label="MobileNetV2",
        min_size=32,
        blocks=_MOBILENET_BLOCKS,
        default_unfreeze="top",
        preprocessing="mobilenet_v2 preprocess_input (scaled to [-1, 1])",
        stride=32,
        channels=1280,
        params=2_257_984,
        activations={"infer": 120, "train": 260},
        linear=False,  # residual connections: no single layer to cut at
    ),
}
NAMES = tuple(SPECS)


def spec(name: str) -> BackboneSpec:
    return SPECS[name]
