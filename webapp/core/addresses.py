"""The address a request really came from, for rate limits keyed by client.

`X-Forwarded-For` is a header any client can send, so it is believed only as far as it was written
by proxies listed in TL_TRUSTED_PROXIES: the chain is read from the right (the hop nearest to us),
skipping trusted proxies, and the first address a trusted proxy did not write for itself is the
client. With no trusted proxies the header is ignored and the socket's peer is the client.
"""

import ipaddress

from django.conf import settings


def _parse(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    # An IPv4 client seen through an IPv6 socket ("::ffff:1.2.3.4") is the same client.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _trusted(address) -> bool:
    return address is not None and any(address in network for network in settings.TL_TRUSTED_PROXIES)


def client_address(request) -> str:
    """The client's IP address as text; the raw value when a hop is not an IP address at all."""
    peer = request.META.get("REMOTE_ADDR", "")
    current = _parse(peer)
    if not _trusted(current):
        return str(current) if current is not None else peer
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        # `hop` was written by the trusted proxy `current`, so it is what that proxy saw.
        parsed = _parse(hop)
        if not _trusted(parsed):
            return str(parsed) if parsed is not None else hop
        current = parsed
    return str(current)


def rate_limit_identity(address: str) -> str:
    """The bucket an address counts in: itself for IPv4, its /64 for IPv6 (one host usually has a
    whole /64 to pick addresses from, so counting single IPv6 addresses would be no limit at all)."""
    parsed = _parse(address)
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed) if parsed is not None else address
