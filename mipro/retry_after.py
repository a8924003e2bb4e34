"""The `Retry-After` header of an HTTP response, as seconds to wait (RFC 9110 §10.2.3).

Shared by the interceptor (LLM upstream 429s) and the rollout activity (task-app 429s and 503s).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

MAX_RETRY_AFTER_SECONDS = 20.0


def retry_after_seconds(
    value: str | None, cap: float = MAX_RETRY_AFTER_SECONDS, now: datetime | None = None
) -> float | None:
    """Seconds to wait from a Retry-After value (delay-seconds or an HTTP date), capped at `cap`.

    None when the value is absent or unreadable (negative, not finite, a malformed date), so the caller
    falls back to its own backoff. A date in the past means 0.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, cap)
