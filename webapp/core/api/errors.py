"""One error shape for the whole API: {"detail": "...", "errors": [{"field", "index", "message"}]}.

`detail` is one sentence a person can act on; `errors` lists every problem found, each naming the
field (a dotted path such as "augmentation.rotation_range" or "instances[2].b64") and, for
predict inputs, the input's index.
"""

import logging

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from webapp.core.errors import ServiceError
from webapp.core.redact import without_server_paths
from webapp.core.request_id import current_request_id

from .exceptions import PayloadTooLarge

# Django reports its own uncaught exceptions here; API ones join them, so one alert rule sees both.
request_logger = logging.getLogger("django.request")


class ErrorItemSerializer(serializers.Serializer):
    field = serializers.CharField(allow_null=True, help_text="The field or input at fault, when there is one.")
    index = serializers.IntegerField(allow_null=True, help_text="The 0-based index of the input at fault.")
    message = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    errors = ErrorItemSerializer(many=True)


_DESCRIPTIONS = {
    400: "The request is invalid; `errors` names each field or input at fault.",
    401: "No valid credentials: send `Authorization: Token <key>` or sign in.",
    403: "Credentials were refused (for a browser session: a missing CSRF token).",
    404: "Not found, or owned by another user.",
    409: "The request conflicts with the object's state.",
    411: "A multipart upload was sent without a Content-Length header (a chunked body).",
    413: "The request body is larger than the server accepts.",
    415: "The body's content type is not accepted here.",
    429: "Too many requests; retry after the number of seconds in the Retry-After header.",
    503: "A service the request needs (the queue or the model store) is unavailable.",
}


def error_responses(*codes: int, auth: bool = True) -> dict:
    """OpenAPI responses for `codes` (plus 401 and 403 for authenticated endpoints), all ErrorSerializer."""
    wanted = sorted(set(codes) | ({401, 403} if auth else set()))
    return {code: OpenApiResponse(ErrorSerializer, description=_DESCRIPTIONS[code]) for code in wanted}


def _flatten(detail, prefix: str = "") -> list[dict]:
    """DRF's nested ValidationError detail -> a flat list of {"field", "index", "message"}."""
    if isinstance(detail, dict):
        items = []
        for key, value in detail.items():
            name = prefix if key == "non_field_errors" else (f"{prefix}.{key}" if prefix else str(key))
            items += _flatten(value, name)
        return items
    if isinstance(detail, list):
        if all(not isinstance(d, (dict, list)) for d in detail):
            return [{"field": prefix or None, "index": None, "message": str(d)} for d in detail]
        items = []
        for i, value in enumerate(detail):
            if value:
                items += _flatten(value, f"{prefix}[{i}]")
        return items
    return [{"field": prefix or None, "index": None, "message": str(detail)}]


def _body(detail: str, errors: list[dict]) -> dict:
    # Messages may quote an exception that names a server file; clients see its name only.
    errors = [{**error, "message": without_server_paths(str(error.get("message", "")))} for error in errors]
    return {"detail": without_server_paths(detail), "errors": errors}


def exception_handler(exc, context):
    """DRF's handler, then every error body reshaped to ErrorSerializer; ServiceError keeps its status."""
    if isinstance(exc, ServiceError):
        errors = getattr(exc, "errors", None) or [{"field": exc.field, "index": None, "message": exc.message}]
        return Response(_body(exc.message, errors), status=exc.status_code)
    if isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge(str(exc))
    elif isinstance(exc, SuspiciousOperation):
        # TooManyFilesSent, TooManyFieldsSent and friends: Django would answer an HTML 400.
        exc = exceptions.ParseError(str(exc))
    response = drf_exception_handler(exc, context)
    if response is None:
        return _unexpected(exc, context["request"])
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        first = errors[0] if errors else {"field": None, "message": "Invalid input."}
        detail = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
        response.data = _body(detail, errors)
    else:
        detail = response.data.get("detail", "") if isinstance(response.data, dict) else str(response.data)
        response.data = _body(str(detail), [])
    return response


def server_error_detail() -> str:
    """What a 500 tells the client: the request id under which the traceback is logged, nothing more."""
    return (
        f"The server failed on this request (request id {current_request_id()}); "
        "it is logged under that id: quote it when you report the problem."
    )


def _unexpected(exc: Exception, request) -> Response:
    """A bug or an outage, not the client's fault: 500 in the house shape; the traceback goes to the log only."""
    set_rollback()
    request_logger.error(
        "Internal Server Error: %s %s (%s)", request.method, request.path, type(exc).__name__, exc_info=exc
    )
    return Response(_body(server_error_detail(), []), status=500)


def api_error(detail: str, *, status: int) -> JsonResponse:
    """An error in the house shape from outside DRF (Django's own error views, the catch-all below)."""
    return JsonResponse(_body(detail, []), status=status)


@csrf_exempt
def api_not_found(request, *args, **kwargs):
    """Unknown paths under /api/v1/ (an id that is not a number, a typo) answer JSON, not an HTML page."""
    return api_error(f"No API endpoint at {request.path}.", status=404)
