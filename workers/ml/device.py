"""Where a training run computes: the config's ``device`` (auto | cpu | gpu) applied to TensorFlow.

Called once at the start of a run, before TensorFlow touches a device: visible devices cannot
change after that. A training run has a fresh process (one per job), so that holds in workers.
"""

from __future__ import annotations

import tensorflow as tf

from workers.ml.errors import MLError


def use_device(device: str) -> str:
    """Make TensorFlow compute on ``device``; returns what it will use ("cpu" or "gpu").

    cpu hides every GPU; gpu raises MLError when TensorFlow sees none (a GPU job must never run
    hours slower on a CPU unnoticed); auto leaves TensorFlow's own choice, a GPU when it sees one.
    """
    gpus = tf.config.list_physical_devices("GPU")
    if device == "gpu":
        if not gpus:
            raise MLError(
                "this experiment asks for a GPU (device: gpu) but TensorFlow sees none on this worker "
                f"(TensorFlow {tf.__version__}, built with CUDA: {tf.test.is_built_with_cuda()}); run it on a "
                "worker started with TL_WORKER_DEVICE=gpu on a machine with a GPU, or choose device auto or cpu"
            )
        return "gpu"
    if device == "cpu":
        if gpus and tf.config.get_visible_devices("GPU"):
            tf.config.set_visible_devices([], "GPU")
        return "cpu"
    if device != "auto":
        raise MLError(f"device must be auto, cpu or gpu, got {device!r}")
    return "gpu" if gpus else "cpu"
