"""Upload size limits enforced while a multipart body is read, not after it was spooled to disk.

Django reads a multipart body the first time anything touches `request.POST` or `request.FILES`
and writes its file parts to temporary files with no size limit of its own. For a signed-in
browser that first touch is the CSRF check, before the view runs. So `limit_upload` must be
called before that: in a `csrf_exempt` view that checks CSRF itself afterwards (Django's pattern
for changing upload handlers), or in a DRF view's `initial()`, before authentication. Why, and what
was measured: docs/decisions.md, "Upload limits while reading".
"""

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler
from django.http import HttpResponse

from .errors import ServiceError
from .xhr import json_error, wants_json

# Multipart framing (boundaries, part headers, small form fields) around the files' own bytes.
FRAMING_ALLOWANCE = 64 * 1024


class UploadTooLarge(ServiceError):
    status_code = 413


class LengthRequired(ServiceError):
    status_code = 411


class UploadLimitHandler(FileUploadHandler):
    """First of the request's upload handlers: refuses the body once its files pass `limit` bytes.

    `already` counts bytes an earlier request of the same upload stored (a folder sent in batches).
    """

    def __init__(self, request, *, limit: int, setting: str, what: str, already: int = 0):
        super().__init__(request)
        self.limit, self.setting, self.what, self.total = limit, setting, what, already

    def _over(self) -> str:
        return f"past the {self.what} limit of {self.limit} bytes ({self.setting})"

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        # Called before a byte of the body is read; the declared length is all there is to go on.
        if content_length <= self.limit - self.total + FRAMING_ALLOWANCE:
            return
        if self.total:
            raise UploadTooLarge(
                f"This request's {content_length} bytes, after the {self.total} bytes already received, "
                f"go {self._over()}."
            )
        raise UploadTooLarge(f"The request body is {content_length} bytes, {self._over()}.")

    def receive_data_chunk(self, raw_data, start):
        self.total += len(raw_data)
        if self.total > self.limit:
            # The handlers after this one keep a partly written temporary file: remove it now.
            for handler in self.request.upload_handlers:
                if handler is not self:
                    handler.upload_interrupted()
            raise UploadTooLarge(f"The file {self.file_name!r} goes {self._over()}; nothing was stored.")
        return raw_data

    def file_complete(self, file_size):
        return None


def limit_upload(request, *, limit: int, setting: str, what: str = "upload", already: int = 0) -> None:
    """Cap the files of this request's multipart body at `limit - already` bytes, named `setting` in errors.

    Raises LengthRequired for a multipart body without a Content-Length: WSGI servers pass a
    chunked body on without one, and Django then reads nothing of it (a silently empty upload).
    """
    if _multipart(request) and not str(request.META.get("CONTENT_LENGTH") or "").isdigit():
        raise LengthRequired(
            "The upload was sent without a Content-Length header (a chunked body), which this server "
            "cannot read; send the file with its length (browsers, curl -F and requests all do)."
        )
    handler = UploadLimitHandler(request, limit=limit, setting=setting, what=what, already=already)
    # In place (a DRF request hands out its Django request's list): this limit replaces the default one.
    request.upload_handlers[:] = [
        handler,
        *(h for h in request.upload_handlers if not isinstance(h, UploadLimitHandler)),
    ]


class UploadLimitMiddleware:
    """Every multipart body is capped before anything reads it: at DATA_UPLOAD_MAX_MEMORY_SIZE of files
    unless the view raises the cap with `limit_upload` (the upload views, predict). Without it a POST
    to any form, the sign-in page included, spooled files of any size to a temporary file."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if _multipart(request):
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            handler = UploadLimitHandler(request, limit=limit, setting="DATA_UPLOAD_MAX_MEMORY_SIZE", what="form")
            request.upload_handlers.insert(0, handler)
        return self.get_response(request)

    def process_view(self, request, view, args, kwargs):
        # The CSRF check reads the body next, where a refusal would become a 500. Views exempt from it
        # read the body themselves (after `limit_upload`, or in DRF, whose handler answers 413).
        if request.method != "POST" or not _multipart(request) or getattr(view, "csrf_exempt", False):
            return None
        try:
            request.POST.get("csrfmiddlewaretoken")  # read here, under this middleware's limit
        except UploadTooLarge as exc:
            if wants_json(request):
                return json_error(exc.message, status=exc.status_code)
            return HttpResponse(exc.message, status=exc.status_code, content_type="text/plain; charset=utf-8")
        return None


def _multipart(request) -> bool:
    return request.META.get("CONTENT_TYPE", "").startswith("multipart/")
