"""A saved model's layers as ``model.summary()`` shows them, as data the pages and the API can show.

The backbone is a nested model: its layers are listed under it (``depth`` 1), so a fine-tune shows
which blocks train and which stay frozen, as ``model.summary(expand_nested=True)`` would.
"""

from __future__ import annotations

import numpy as np


def _shape(layer) -> str:
    try:
        shape = layer.output.shape
    except (AttributeError, ValueError):  # a layer called more than once, or never built
        return "?"
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def _count(weights) -> int:
    return int(sum(int(np.prod(w.shape)) for w in weights))


def model_summary(model, *, backbone_frozen: bool = False) -> dict:
    """{"layers": [{name, type, output_shape, params, trainable_params, state, depth}], "total_params",
    "trainable_params", "non_trainable_params"}; ``state`` is "trainable", "frozen", "partly frozen",
    "statistics" (weights that are measured, not trained: normalisation means and variances) or
    "no weights". ``backbone_frozen``: the backbone (the nested model with convolutions) was not
    trained whatever its flags say (bottleneck mode: its features were computed once, before the head
    trained)."""
    import keras

    frozen = {
        layer.name
        for layer in model.layers
        if backbone_frozen
        and isinstance(layer, keras.Model)
        and any("Conv" in type(inner).__name__ for inner in layer.layers)
    }
    rows = []

    def walk(container, depth: int, outer_frozen: bool = False) -> None:
        for layer in container.layers:
            is_frozen = outer_frozen or layer.name in frozen
            params = _count(layer.weights)
            trainable = 0 if is_frozen else _count(layer.trainable_weights)
            if params == 0:
                state = "no weights"
            elif is_frozen:
                state = "frozen"
            elif trainable == params:
                state = "trainable"
            elif trainable == 0:
                state = "statistics" if layer.trainable else "frozen"
            else:
                state = "partly frozen"
            rows.append({
                "name": layer.name, "type": type(layer).__name__, "output_shape": _shape(layer),
                "params": params, "trainable_params": trainable, "state": state, "depth": depth,
            })  # fmt: skip
            if isinstance(layer, keras.Model) and depth == 0:
                walk(layer, depth + 1, is_frozen)

    walk(model, 0)
    total = _count(model.weights)
    trainable = sum(row["trainable_params"] for row in rows if row["depth"] == 0)
    return {
        "layers": rows,
        "total_params": total,
        "trainable_params": trainable,
        "non_trainable_params": total - trainable,
    }
