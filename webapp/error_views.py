"""Django's own error answers (handler400..500 in webapp/urls.py, CSRF_FAILURE_VIEW), chosen per client.

They answer what Django refuses before or outside a DRF view: an unknown path, a bad Host header,
too many form fields, a failed CSRF check, an exception in a middleware or a plain view.
Under /api/ the answer is the API's JSON error shape; a page's script (upload.js) gets the JSON
it reads; everyone else gets Django's pages.
"""

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.views import csrf, defaults

from webapp.core.api.errors import api_error, server_error_detail
from webapp.core.xhr import json_error, wants_json

# Other refusals (a Host header not in ALLOWED_HOSTS, ...) are not explained, as Django's page does not.
REFUSED = "The request was refused as malformed or unsafe."
FORBIDDEN = "You do not have permission to do this."
CSRF_FAILED = "The form's security token is missing or out of date; reload the page and try again."


def _json(request, message: str, status: int):
    """The JSON answer for this client, or None when it should get Django's page."""
    if request.path_info.startswith("/api/"):
        return api_error(message, status=status)
    if wants_json(request):
        return json_error(message, status=status)
    return None


def bad_request(request, exception, template_name="400.html"):
    if isinstance(exception, RequestDataTooBig):
        answer = _json(request, str(exception), 413)
    elif isinstance(exception, TooManyFieldsSent | TooManyFilesSent):
        answer = _json(request, str(exception), 400)
    else:
        answer = _json(request, REFUSED, 400)
    return answer or defaults.bad_request(request, exception, template_name)


def permission_denied(request, exception, template_name="403.html"):
    return _json(request, FORBIDDEN, 403) or defaults.permission_denied(request, exception, template_name)


def page_not_found(request, exception, template_name="404.html"):
    message = f"Nothing is found at {request.path}; it may have been deleted or have expired."
    if request.path_info.startswith("/api/"):
        message = f"No API endpoint at {request.path}."
    return _json(request, message, 404) or defaults.page_not_found(request, exception, template_name)


def server_error(request, template_name="500.html"):
    # Django logs the traceback itself, right after this, with the request id (the log filter adds it).
    return _json(request, server_error_detail(), 500) or defaults.server_error(request, template_name)


def csrf_failure(request, reason="", template_name=csrf.CSRF_FAILURE_TEMPLATE_NAME):
    answer = _json(request, CSRF_FAILED, 403)
    return answer or csrf.csrf_failure(request, reason=reason, template_name=template_name)
