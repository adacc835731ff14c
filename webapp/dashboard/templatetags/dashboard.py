"""Small formatting helpers for the dashboard templates."""

from datetime import timedelta

from django import template
from django.urls import NoReverseMatch, reverse

register = template.Library()


@register.filter
def span(value: timedelta | None) -> str:
    """A short duration for narrow table cells: "42s", "3m 05s", "2h 14m", "3d 4h"; "—" if unknown."""
    if value is None:
        return "—"
    seconds = max(0, int(value.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


@register.simple_tag
def admin_change_url(obj) -> str:
    """The admin page of `obj`, or "" while its model is not registered with the admin."""
    meta = obj._meta
    try:
        return reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
    except NoReverseMatch:
        return ""
