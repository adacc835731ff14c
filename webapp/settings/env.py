"""Strict environment readers: a bad value fails at start with the variable named."""

import ipaddress
import os
import re

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use 1/0, true/false, yes/no or on/off")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None, maximum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ImproperlyConfigured(f"{name}={value} must be between {minimum} and {maximum}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_networks(name: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Comma-separated IP addresses or CIDR networks ("10.0.0.1, 192.168.0.0/16, ::1"); empty when unset."""
    networks = []
    for item in env_list(name, []):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ImproperlyConfigured(f"{name}: {item!r} is not an IP address or CIDR network") from None
    return networks


def env_s3_url(name: str) -> str | None:
    """An object store location, ``s3://bucket`` or ``s3://bucket/prefix``; None when unset or empty."""
    raw = (os.environ.get(name) or "").strip()
    if not raw:
        return None
    bucket, _, prefix = raw.removeprefix("s3://").partition("/")
    # S3's bucket rules (3 to 63 lower-case letters, digits, dots and hyphens), which SeaweedFS enforces too.
    if not raw.startswith("s3://") or not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not an object store location: use s3://bucket or s3://bucket/prefix "
            "(a bucket name of 3 to 63 lower-case letters, digits, dots and hyphens)"
        )
    if any(part in {"", ".", ".."} for part in prefix.strip("/").split("/")) and prefix.strip("/"):
        raise ImproperlyConfigured(f"{name}={raw!r}: the prefix after the bucket has an empty, '.' or '..' part")
    return raw.rstrip("/")


def env_http_url(name: str) -> str | None:
    """An http(s) URL such as an S3 endpoint; None when unset or empty."""
    raw = (os.environ.get(name) or "").strip()
    if not raw:
        return None
    if not re.fullmatch(r"https?://[^/\s]+/?", raw):
        raise ImproperlyConfigured(f"{name}={raw!r} is not an endpoint URL such as http://127.0.0.1:8333")
    return raw.rstrip("/")
