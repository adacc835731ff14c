"""The dashboard's own template tag (values are formatted by the built-in filters of webapp/core/templatetags)."""

from django import template
from django.urls import NoReverseMatch, reverse

register = template.Library()


@register.simple_tag
def admin_change_url(obj) -> str:
    """The admin page of `obj`, or "" while its model is not registered with the admin."""
    meta = obj._meta
    try:
        return reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
    except NoReverseMatch:
        return ""
