"""Errors raised by the ML engine.

Everything derived from ``MLError`` is an expected failure whose ``str()`` is safe and
useful to show to a user; anything else escaping the engine is a bug.
"""


class MLError(Exception):
    """Expected, user-actionable failure; ``str(e)`` is shown to users."""


class ConfigError(MLError):
    """An experiment config value is invalid; ``key`` is its dotted path."""

    def __init__(self, key: str, message: str):
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}")


class DatasetError(MLError):
    """The dataset folders cannot be used for training."""


class WeightsError(MLError):
    """Backbone weights are unavailable; the message names the file and TL_WEIGHTS_DIR."""


class Cancelled(MLError):
    """Training stopped because ``should_stop()`` asked for it."""
