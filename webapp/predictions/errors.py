"""Errors of the predict services."""

from webapp.core.errors import ServiceError


class InputErrors(ServiceError):
    """Problems with a request's inputs, each a dict naming its `field`, `index` and `message`."""

    def __init__(self, errors: list[dict], *, status_code: int = 400):
        first = errors[0]["message"]
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        super().__init__(first + more, field=errors[0].get("field"))
        self.errors = [{"field": e.get("field"), "index": e.get("index"), "message": e["message"]} for e in errors]
        self.status_code = status_code
