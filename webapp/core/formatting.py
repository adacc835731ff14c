"""How the app shows each kind of value: one function per kind, used by every page (through the template
filters in webapp/core/templatetags/present.py), the dashboard, the admin and the sentences selectors write.

docs/decisions.md, "One presentation per value", says why each looks as it does.
"""

from datetime import datetime, timedelta, tzinfo

from django.utils import timezone

from workers.ml.registry import SPECS

UNKNOWN = "\u2014"

MODE_NAMES = {"bottleneck": "Bottleneck", "finetune": "Fine-tune", "scratch": "From scratch"}
# Scratch mode trains workers/ml's small convnet; older rows store "scratch", "none" or nothing as its backbone.
SCRATCH_BACKBONE = "small convnet"

_TIME_STYLES = {"minute": "%Y-%m-%d %H:%M", "second": "%Y-%m-%d %H:%M:%S", "clock": "%H:%M:%S", "hour": "%H:00"}


def _blank(value) -> bool:
    return value is None or value == ""


def format_percent(value: float | None, digits: int = 1) -> str:
    """A fraction (0.92) as a percentage with one decimal: "92.0%"; `digits` for progress ("45%")."""
    if _blank(value):
        return UNKNOWN
    return f"{float(value) * 100:.{int(digits)}f}%"


def format_points(value: float | None) -> str:
    """A difference in percentage points, signed: "+1.2 points", "\u22120.4 points", "\u00b10.0 points"."""
    if _blank(value):
        return UNKNOWN
    value = round(float(value), 1)
    sign = "+" if value > 0 else ("\u2212" if value < 0 else "\u00b1")
    return f"{sign}{abs(value):.1f} points"


def format_duration(value: timedelta | float | int | None) -> str:
    """ "42 s", "1 min 5 s", "2 h 14 min", "3 d 4 h"; "under 1 s" (never "0 s": a job that has started has
    taken some time); "\u2014" when unknown. Seconds or a timedelta."""
    if _blank(value):
        return UNKNOWN
    seconds = max(0, int(value.total_seconds() if isinstance(value, timedelta) else float(value)))
    if seconds < 1:
        return "under 1 s"
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def zone_name(moment: datetime) -> str:
    """The zone's abbreviation at that moment ("UTC", "CET"); zones without one say "UTC+04" rather than "+04"."""
    name = moment.tzname() or "UTC"
    return f"UTC{name}" if name[0] in "+-" else name


def format_time(value: datetime | None, style: str = "minute", zone: tzinfo | None = None) -> str:
    """A moment in the reader's zone (the active one, webapp.core.timezones), the zone always shown:
    "2026-11-29 18:04 UTC". Styles: minute, second, clock ("18:04:09 UTC"), hour ("18:00 UTC")."""
    if _blank(value):
        return UNKNOWN
    if timezone.is_naive(value):
        value = timezone.make_aware(value, timezone.get_default_timezone())
    local = value.astimezone(zone or timezone.get_current_timezone())
    return f"{local.strftime(_TIME_STYLES[style])} {zone_name(local)}"


def format_mode(mode: str | None) -> str:
    """An experiment's mode as pages name it: "Bottleneck", "Fine-tune", "From scratch"."""
    if _blank(mode):
        return UNKNOWN
    return MODE_NAMES.get(mode, mode)


def format_backbone(backbone: str | None, mode: str | None = None) -> str:
    """ "VGG16", "MobileNetV2" (workers/ml/registry.py), "small convnet" for a scratch experiment or model."""
    if mode == "scratch" or backbone in (None, "", "none", "scratch"):
        return SCRATCH_BACKBONE
    spec = SPECS.get(backbone)
    return spec.label if spec else backbone


def format_run(number: int | None) -> str:
    """A run's name within its experiment: "Run 1" is its first job (TrainingJob.run_number)."""
    return UNKNOWN if _blank(number) else f"Run {number}"
