"""Environment-API-key auth for task apps, as synth-ai does it (research notes §1.2).

The key is accepted from `X-API-Key: k`, `X-API-Keys: k1,k2` or `Authorization: Bearer k`. A wrong or missing
key gives HTTP **400** (not 401) with `{"detail": {"error": {"code": "unauthorised", ...}}}`. When the app is
built without a key, every request is let through (synth would answer 503 instead; we stay usable offline).
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import HTTPException
from starlette.datastructures import Headers


def error_detail(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The synth error envelope used as an HTTPException detail: `{"error": {"code", "message", ...}}`."""
    return {"error": {"code": code, "message": message, **extra}}


def presented_keys(headers: Headers) -> list[str]:
    """Every key the caller presented, in header priority order (X-API-Key, X-API-Keys, Bearer)."""
    keys: list[str] = []
    single = headers.get("x-api-key", "").strip()
    if single:
        keys.append(single)
    keys.extend(k.strip() for k in headers.get("x-api-keys", "").split(",") if k.strip())
    auth = headers.get("authorization", "").strip()
    if auth.lower().startswith("bearer "):
        bearer = auth[7:].strip()
        if bearer:
            keys.append(bearer)
    return keys


def _matches(candidate: str, expected: str) -> bool:
    return hmac.compare_digest(candidate.encode(), expected.encode())


def authorise(headers: Headers, expected: str | None) -> str | None:
    """Check the inbound key; return the key to forward upstream (the matching one, else the first presented).

    Raises HTTPException(400, unauthorised) when a key is configured and none of the presented keys match.
    """
    keys = presented_keys(headers)
    if expected is None:
        return keys[0] if keys else None
    for key in keys:
        if _matches(key, expected):
            return key
    raise HTTPException(
        status_code=400,
        detail=error_detail(
            "unauthorised",
            "API key missing or invalid",
            keys_presented=len(keys),
        ),
    )


def auth_summary(expected: str | None) -> dict[str, Any]:
    """The `auth` block of `/health`."""
    if expected is None:
        return {"required": False, "expected_prefix": "<unset>"}
    return {"required": True, "expected_prefix": expected[:6] + "..."}
