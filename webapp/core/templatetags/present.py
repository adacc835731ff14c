"""The one library of presentation filters, built into every template (settings TEMPLATES "builtins"):
each filter is a function of webapp.core.formatting, so a page, the dashboard and the admin show a value alike.
tests/core/test_presentation.py keeps templates from formatting these values any other way."""

from django import template

from webapp.core import formatting

register = template.Library()


@register.filter
def percent(value, digits=1) -> str:
    """0.92 -> "92.0%"; `|percent:0` for progress."""
    return formatting.format_percent(value, digits)


@register.filter
def points(value) -> str:
    """A difference in percentage points: "+1.2 points"."""
    return formatting.format_points(value)


@register.filter
def duration(value) -> str:
    """A timedelta or seconds: "1 min 5 s"."""
    return formatting.format_duration(value)


@register.filter
def when(value, style="minute") -> str:
    """A datetime in the reader's zone, the zone shown: "2026-11-29 18:04 UTC" (styles: second, clock, hour)."""
    return formatting.format_time(value, style)


@register.filter
def mode_name(mode) -> str:
    """ "Bottleneck", "Fine-tune", "From scratch"."""
    return formatting.format_mode(mode)


@register.filter
def backbone_name(backbone, mode=None) -> str:
    """`{{ e.backbone|backbone_name:e.mode }}`: "VGG16", "MobileNetV2", "small convnet"."""
    return formatting.format_backbone(backbone, mode)
