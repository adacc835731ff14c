"""The reader's time zone, for pages that show times (webapp.core.formatting.format_time).

The browser knows it (Intl.DateTimeFormat().resolvedOptions().timeZone); static/js/timezone.js writes it
to the `tz` cookie on every page, and this middleware activates it for the request. Without the cookie
(the very first page, a script-less client) or with a name the zone database does not know, times stay
in UTC, and every time shown names its zone, so none is ever ambiguous (docs/decisions.md).
"""

import zoneinfo
from functools import lru_cache
from urllib.parse import unquote

from django.utils import timezone

COOKIE = "tz"


@lru_cache(maxsize=64)
def reader_zone(name: str) -> zoneinfo.ZoneInfo | None:
    """The zone called `name` (an IANA name such as "Europe/Paris"), or None when there is no such zone."""
    if not name or len(name) > 64:
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        # ValueError: a path-like or malformed key ("../etc", "a//b"), refused by zoneinfo itself.
        return None


class ReaderTimezoneMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        zone = reader_zone(unquote(request.COOKIES.get(COOKIE, "")))
        if zone is None:
            timezone.deactivate()
        else:
            timezone.activate(zone)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
