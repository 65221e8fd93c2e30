"""Paddle-Signature verification (Paddle Billing): HMAC-SHA256 over f"{ts}:" + raw body.

Written here rather than taken from the SDK: the SDK's verifier turns its clock check off when
TEST_MODE is set in the environment, and its header parser rejects keys it does not know.
"""

import hashlib
import hmac
import time
from collections.abc import Sequence

DEFAULT_TOLERANCE_SECONDS = 5


class SignatureError(Exception):
    """The signature is missing, malformed, stale or wrong; the message names which, no secrets."""


def signature_parse(header: str) -> tuple[int, list[str]]:
    """Split `ts=…;h1=…;h1=…` into the timestamp and every h1; unknown keys are ignored."""
    ts: int | None = None
    signatures: list[str] = []
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "ts":
            if not value.isdigit():
                raise SignatureError("malformed timestamp")
            ts = int(value)
        elif key == "h1" and value:
            signatures.append(value.lower())
    if ts is None:
        raise SignatureError("no timestamp")
    if not signatures:
        raise SignatureError("no h1 signature")
    return ts, signatures


def signature_verify(
    header: str | None,
    body: bytes,
    secrets: Sequence[str],
    *,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Raise SignatureError unless one configured secret signed `body` within `tolerance` s."""
    if not header:
        raise SignatureError("missing Paddle-Signature header")
    if not secrets:
        raise SignatureError("no webhook secret configured")
    ts, signatures = signature_parse(header)
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance:
        raise SignatureError("timestamp outside the tolerance")
    signed = f"{ts}:".encode() + body
    matched = False
    for secret in secrets:
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        for candidate in signatures:
            # Compare every pair so the time taken does not depend on which one matched.
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise SignatureError("signature mismatch")


def signature_header(body: bytes, secret: str, *, ts: int | None = None) -> str:
    """Build a Paddle-Signature header (for tests and local tooling)."""
    ts = int(time.time()) if ts is None else ts
    digest = hmac.new(secret.encode(), f"{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return f"ts={ts};h1={digest}"
