"""Upload size limits enforced while a multipart body is read, not after it was spooled to disk.

Django reads a multipart body the first time anything touches `request.POST` or `request.FILES`
and writes its file parts to temporary files with no size limit of its own. For a signed-in
browser that first touch is the CSRF check, before the view runs. So `limit_upload` must be
called before that: in a `csrf_exempt` view that checks CSRF itself afterwards (Django's pattern
for changing upload handlers), or in a DRF view's `initial()`, before authentication. Why, and what
was measured: docs/decisions.md, "Upload limits while reading".
"""

from django.core.files.uploadhandler import FileUploadHandler

from .errors import ServiceError

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
    content_type = request.META.get("CONTENT_TYPE", "")
    if content_type.startswith("multipart/") and not str(request.META.get("CONTENT_LENGTH") or "").isdigit():
        raise LengthRequired(
            "The upload was sent without a Content-Length header (a chunked body), which this server "
            "cannot read; send the file with its length (browsers, curl -F and requests all do)."
        )
    handler = UploadLimitHandler(request, limit=limit, setting=setting, what=what, already=already)
    request.upload_handlers.insert(0, handler)
