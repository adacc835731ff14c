"""How the app shows durations: one function, used by every page, the dashboard and the admin."""

from datetime import timedelta


def format_duration(value: timedelta | float | int | None) -> str:
    """ "42s", "3m 05s", "2h 14m", "3d 4h"; "—" when unknown. Seconds or a timedelta."""
    if value is None or value == "":
        return "\u2014"
    seconds = max(0, int(value.total_seconds() if isinstance(value, timedelta) else float(value)))
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
