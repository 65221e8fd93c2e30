"""Client address resolution that honours X-Forwarded-For only from trusted proxies."""

import ipaddress
from collections.abc import Iterable, Mapping

from django.conf import settings
from django.http import HttpRequest


def _trusted(address: str, networks: Iterable[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(net, strict=False) for net in networks)


def is_trusted_proxy(address: str | None) -> bool:
    """Whether a peer is one of our reverse proxies (so its X-Forwarded-* headers count)."""
    return bool(address) and _trusted(str(address), getattr(settings, "TRUSTED_PROXIES", []))


def resolve_client_ip(remote_addr: str | None, forwarded_for: str | None) -> str | None:
    """The client's address: the right-most untrusted hop of X-Forwarded-For behind our proxies."""
    trusted = getattr(settings, "TRUSTED_PROXIES", [])
    if not remote_addr:
        return None
    if forwarded_for and _trusted(remote_addr, trusted):
        for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
            if not _trusted(hop, trusted):
                try:
                    return str(ipaddress.ip_address(hop))
                except ValueError:
                    return None
    return remote_addr


def client_ip(request: HttpRequest) -> str | None:
    meta: Mapping[str, str] = request.META
    return resolve_client_ip(meta.get("REMOTE_ADDR"), meta.get("HTTP_X_FORWARDED_FOR"))
