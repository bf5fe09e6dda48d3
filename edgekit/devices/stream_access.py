"""Who may watch the MJPEG stream: an access token in the URL's query string (`?token=...`, so a phone's
browser opens the printed URL as it is), required by default whenever the server is reachable from beyond
this machine, compared in constant time."""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import logging
import re
import secrets
import socket
from urllib.parse import parse_qs, urlsplit

from edgekit.errors import EdgekitError

logger = logging.getLogger(__name__)
TOKEN_PARAM = "token"
TOKEN_BYTES = 16  # 128 random bits, 22 URL-safe characters
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9._~-]{8,128}")  # RFC 3986 unreserved characters: no escaping anywhere


def is_loopback(address: str) -> bool:
    """Whether a bound IPv4/IPv6 address (or the name "localhost") reaches this machine only."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def checked_token(token: str) -> str:
    """A token given by the user, as it is; EdgekitError unless 8-128 characters of A-Z a-z 0-9 . _ ~ -."""
    if not TOKEN_PATTERN.fullmatch(token):
        raise EdgekitError(
            f"token {token!r} is not 8-128 characters of letters, digits and . _ ~ - (leave it out for a random one)"
        )
    return token


def access_token(address: str, token: str | None = None, no_token: bool = False) -> str | None:
    """The token a server bound to `address` requires, or None for none.

    A given `token` is required wherever the server is bound; without one, a server bound beyond loopback gets
    a random token (`secrets.token_urlsafe`, 128 bits) and a loopback one none. `no_token` opts out explicitly:
    no token, and a warning on the `edgekit.devices.stream_access` logger when the address is not loopback.
    Raises EdgekitError for a malformed token or for a token together with `no_token`.
    """
    if token is not None and no_token:
        raise EdgekitError("a token and no token at once: give one or the other")
    if no_token:
        if not is_loopback(address):
            logger.warning("serving on %s without a token: anyone who can reach it watches the camera", address)
        return None
    if token is not None:
        return checked_token(token)
    return None if is_loopback(address) else secrets.token_urlsafe(TOKEN_BYTES)


def token_matches(path: str, token: str | None) -> bool:
    """Whether a request path (with its query string) carries `token` (always true when `token` is None).
    Compared with `hmac.compare_digest`: the time taken does not depend on how much of the token was right."""
    if token is None:
        return True
    given = parse_qs(urlsplit(path).query).get(TOKEN_PARAM, [""])[0]
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode())


def with_token(url: str, token: str | None) -> str:
    """`url` with `?token=...` appended (unchanged when `token` is None)."""
    return url if token is None else f"{url}?{TOKEN_PARAM}={token}"


def lan_address() -> str | None:
    """This machine's address on its default route (what a phone on the same network opens), or None.
    Connecting a UDP socket picks the route and sends nothing."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("10.255.255.255", 9))
        address = probe.getsockname()[0]
        if not is_loopback(address) and address != "0.0.0.0":
            return address
    return None
