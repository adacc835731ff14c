"""Small formatting filters for the experiment pages."""

from django import template

from webapp.core.formatting import format_duration

register = template.Library()


@register.filter
def duration(value) -> str:
    """A timedelta or a number of seconds, as every page shows durations (webapp.core.formatting)."""
    return format_duration(value)


@register.filter
def percent(value, digits=1) -> str:
    if value is None or value == "":
        return "—"
    return f"{float(value) * 100:.{int(digits)}f}%"
