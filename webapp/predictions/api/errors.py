"""One error shape for the whole API: {"detail": "...", "errors": [{"field", "index", "message"}]}.

`detail` is one sentence a person can act on; `errors` lists every problem found, each naming the
field (a dotted path such as "augmentation.rotation_range" or "instances[2].b64") and, for
predict inputs, the input's index.
"""

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from webapp.core.errors import ServiceError


class ErrorItemSerializer(serializers.Serializer):
    field = serializers.CharField(allow_null=True, help_text="The field or input at fault, when there is one.")
    index = serializers.IntegerField(allow_null=True, help_text="The 0-based index of the input at fault.")
    message = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    errors = ErrorItemSerializer(many=True)


class PayloadTooLarge(exceptions.APIException):
    status_code = 413
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


_DESCRIPTIONS = {
    400: "The request is invalid; `errors` names each field or input at fault.",
    401: "No valid credentials: send `Authorization: Token <key>` or sign in.",
    403: "Credentials were refused (for a browser session: a missing CSRF token).",
    404: "Not found, or owned by another user.",
    409: "The request conflicts with the object's state.",
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
    return {"detail": detail, "errors": errors}


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
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        first = errors[0] if errors else {"field": None, "message": "Invalid input."}
        detail = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
        response.data = _body(detail, errors)
    else:
        detail = response.data.get("detail", "") if isinstance(response.data, dict) else str(response.data)
        response.data = _body(str(detail), [])
    return response


@csrf_exempt
def api_not_found(request, *args, **kwargs):
    """Unknown paths under /api/v1/ (an id that is not a number, a typo) answer JSON, not an HTML page."""
    return JsonResponse(_body(f"No API endpoint at {request.path}.", []), status=404)
