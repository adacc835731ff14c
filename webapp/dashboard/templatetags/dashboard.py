"""Small formatting helpers for the dashboard templates."""

from datetime import timedelta

from django import template
from django.urls import NoReverseMatch, reverse

from webapp.core.formatting import format_duration

register = template.Library()


@register.filter
def span(value: timedelta | None) -> str:
    """A duration for narrow table cells (webapp.core.formatting, as on every page)."""
    return format_duration(value)


@register.simple_tag
def admin_change_url(obj) -> str:
    """The admin page of `obj`, or "" while its model is not registered with the admin."""
    meta = obj._meta
    try:
        return reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
    except NoReverseMatch:
        return ""
