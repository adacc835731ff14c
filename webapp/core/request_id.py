"""An id for every request: sent back as `X-Request-ID` and written on every log line of the request.

A user who quotes the id from an error answer (or its header) leads straight to the traceback in
the log. A context variable carries the id, so log lines written deep inside a service, or by
Django itself for an uncaught exception, carry it without being handed the request.
"""

import contextvars
import logging
import re
import uuid

HEADER = "X-Request-ID"
NO_REQUEST = "-"
_current = contextvars.ContextVar("request_id", default=NO_REQUEST)
# A proxy in front (nginx's $request_id, a load balancer) may send its own id: keeping it makes its
# log and ours agree. Anything else is replaced, since the id is written into logs verbatim.
_WELL_FORMED = re.compile(r"[A-Za-z0-9._-]{8,64}")


def current_request_id() -> str:
    """The id of the request being handled on this thread or task, or "-" outside a request."""
    return _current.get()


class RequestIdMiddleware:
    """First in MIDDLEWARE, so that everything after it (and Django's 500 logging) sees the id."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get(HEADER, "")
        request.request_id = incoming if _WELL_FORMED.fullmatch(incoming) else uuid.uuid4().hex
        token = _current.set(request.request_id)
        try:
            response = self.get_response(request)
        finally:
            _current.reset(token)
        response[HEADER] = request.request_id
        return response


class RequestIdLogFilter(logging.Filter):
    """Adds `request_id` to every record, for a log format that shows `%(request_id)s`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = _current.get()
        return True
