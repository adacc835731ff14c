"""The API's JSON parsers: a too deeply nested body is the client's error (400), never a 500.

`[` repeated 50,000 times makes Python's json module raise RecursionError, which DRF's JSONParser
does not catch; and a body nested just under the interpreter's limit would overflow the stack
later, in whatever code walks it. No body this API accepts is more than a few levels deep.
"""

import io

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from .exceptions import PayloadTooLarge

MAX_DEPTH = 64
TOO_DEEP = f"the JSON body is nested too deeply (more than {MAX_DEPTH} levels of arrays and objects)"


def _too_deep(value) -> bool:
    # Iterative, so that checking a deep document cannot itself overflow the stack.
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


class BoundedJSONParser(parsers.JSONParser):
    """DRF's JSON parser (the default for every API view) refusing bodies nested past MAX_DEPTH with 400."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(TOO_DEEP) from None
        if _too_deep(data):
            raise ParseError(TOO_DEEP)
        return data


class CappedJSONParser(parsers.BaseParser):
    """BoundedJSONParser behind the body size cap named by `limit_setting`, enforced while reading.

    Not a JSONParser subclass on purpose: DRF reads the body of those itself, through Django's
    `request.body`, which refuses anything past DATA_UPLOAD_MAX_MEMORY_SIZE (10 MiB) whatever an
    endpoint documents. This one refuses a declared Content-Length over the cap before reading,
    and reads at most one byte past it otherwise.
    """

    media_type = parsers.JSONParser.media_type
    renderer_class = parsers.JSONParser.renderer_class
    limit_setting = "DATA_UPLOAD_MAX_MEMORY_SIZE"

    def parse(self, stream, media_type=None, parser_context=None):
        limit = getattr(settings, self.limit_setting)
        declared = parser_context["request"].META.get("CONTENT_LENGTH") or "0"
        if declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(
                f"The request body is {declared} bytes; the limit is {limit} bytes ({self.limit_setting})."
            )
        body = stream.read(limit + 1)
        if len(body) > limit:
            raise PayloadTooLarge(f"The request body is over the limit of {limit} bytes ({self.limit_setting}).")
        return BoundedJSONParser().parse(io.BytesIO(body), media_type, parser_context)
