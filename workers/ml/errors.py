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


class ConfigErrors(ConfigError):
    """Every invalid value of one config, from ``parse_config(data, collect=True)``.

    ``errors`` holds one ConfigError per problem; ``key``, ``message`` and ``str()`` are the
    first one's, so a caller that shows a single error needs no change.
    """

    def __init__(self, errors):
        self.errors = list(errors)
        super().__init__(self.errors[0].key, self.errors[0].message)


class DatasetError(MLError):
    """The dataset folders cannot be used for training."""


class WeightsError(MLError):
    """Backbone weights are unavailable; the message names the file and TL_WEIGHTS_DIR."""


class Cancelled(MLError):
    """Training stopped because ``should_stop()`` asked for it."""
