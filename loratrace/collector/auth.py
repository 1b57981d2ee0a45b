"""The bearer token check both receivers share (HTTP Authorization header, gRPC authorization metadata)."""

from __future__ import annotations

import hmac


def bearer_matches(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` value carries ``token``; the scheme is case-insensitive (RFC 9110).

    The comparison of the secret itself is constant-time (``hmac.compare_digest``).
    """
    scheme, _, given = (header or "").strip().partition(" ")
    scheme_ok = scheme.lower() == "bearer"
    # always compare, so a wrong scheme takes as long as a wrong token
    token_ok = hmac.compare_digest(given.strip().encode(), token.encode())
    return scheme_ok and token_ok
