"""Answers for the pages' own scripts (static/js/upload.js reads `error`): JSON, never an HTML page.

{"error": "what went wrong, naming the file or field", "field": "archive" | null}
"""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.http import JsonResponse

from .redact import without_server_paths


def wants_json(request) -> bool:
    """A page's script sends these headers; a plain form post or a link does not."""
    return request.headers.get("x-requested-with") == "XMLHttpRequest" or "application/json" in request.headers.get(
        "accept", ""
    )


def json_error(message: str, *, status: int, field: str | None = None) -> JsonResponse:
    return JsonResponse({"error": without_server_paths(message), "field": field}, status=status)


def login_required_for_scripts(view):
    """login_required, but a script's request gets 401 JSON: it would follow the redirect to the sign-in page
    and take that page for the answer."""
    page_view = login_required(view)

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated and wants_json(request):
            return json_error("You are signed out; sign in again in another tab, then retry.", status=401)
        return page_view(request, *args, **kwargs)

    return wrapper
