"""Errors that services raise for users: the message says what is wrong and with which input."""


class ServiceError(Exception):
    """A request that cannot be done as asked; `str(e)` is shown to the user."""

    status_code = 400

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(ServiceError):
    status_code = 404


class Conflict(ServiceError):
    status_code = 409


class TooLarge(ServiceError):
    """The request asks for more work or memory than the server allows."""

    status_code = 413


class Unavailable(ServiceError):
    """A service we depend on (the broker) is down."""

    status_code = 503
