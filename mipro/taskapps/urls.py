"""Inference-URL helpers shared by task apps (synth-ai compatible, research notes §2.1 and §2.5).

`normalize_chat_url` turns whatever `policy.config.inference_url` holds into a chat-completions URL while
KEEPING the query string (the interceptor's `?cid=` must survive), and repairs the malformed
`…?cid=x/chat/completions` that old synth apps produce by appending a path to a URL that has a query
(the stray path is dropped and the real path normalised, so `/v1/abc?cid=x/chat/completions` becomes
`/v1/abc/chat/completions?cid=x`).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, quote, urlsplit, urlunsplit

_CHAT = "/chat/completions"
# A path glued onto the end of the query string, e.g. "cid=x/chat/completions" or "cid=x/v1/chat/completions".
_STRAY_PATH = re.compile(r"^(?P<query>[^/]*)(?P<path>/(?:v1/)?(?:chat/)?completions)/*$")
_PROVIDER_HOSTS = ("api.openai.com", "api.groq.com")
_CID_PARAMS = ("cid", "trace_correlation_id", "trace")


def _repair_query(query: str) -> str:
    """Drop a chat path glued onto the query (`cid=x/chat/completions` -> `cid=x`); it is re-added later."""
    match = _STRAY_PATH.match(query)
    return query if match is None else match.group("query")


def _chat_path(path: str) -> str:
    path = path.rstrip("/")
    if path.endswith(_CHAT):
        return path
    if path.endswith("/completions"):
        return path[: -len("/completions")] + _CHAT
    if path.endswith("/v1") or "/v1/" in path:
        return path + _CHAT
    return path + "/v1" + _CHAT


def normalize_chat_url(url: str) -> str:
    """Return the chat-completions URL for an inference base URL, keeping its query string.

    >>> normalize_chat_url("http://h/api/interceptor/v1/pl-1?cid=trace_pl-1")
    'http://h/api/interceptor/v1/pl-1/chat/completions?cid=trace_pl-1'
    """
    raw = (url or "").strip()
    if not raw:
        raise ValueError("inference_url is empty")
    parts = urlsplit(raw)
    query = _repair_query(parts.query)
    return urlunsplit((parts.scheme, parts.netloc, _chat_path(parts.path), query, parts.fragment))


def is_provider_host(url: str) -> bool:
    """True for a direct vendor URL (synth apps refuse it: 'Direct provider URL not allowed for policy')."""
    host = (urlsplit(url).hostname or "").lower()
    return host in _PROVIDER_HOSTS


def cid_from_url(url: str | None) -> str | None:
    """The trace correlation id carried in an inference URL (`?cid=`, `trace_correlation_id=` or `trace=`)."""
    if not url:
        return None
    parts = urlsplit(url.strip())
    params = parse_qs(_repair_query(parts.query))
    for name in _CID_PARAMS:
        values = [v for v in params.get(name, []) if v.strip()]
        if values:
            return values[0].strip()
    return None


def extract_trace_correlation_id(
    policy_config: dict[str, object], inference_url: str | None, request_cid: str | None = None
) -> str | None:
    """First of policy.config.trace_correlation_id / .trace, the request's top-level id, the URL's cid."""
    for key in ("trace_correlation_id", "trace"):
        value = policy_config.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    if request_cid and request_cid.strip():
        return request_cid.strip()
    return cid_from_url(inference_url)


def stage_chat_url(chat_url: str, stage_id: str) -> str:
    """A chat-completions URL with the stage named in its path, as the interceptor reads it:
    `…/v1/<version>/chat/completions?cid=x` -> `…/v1/<version>/stage/<stage_id>/chat/completions?cid=x`.

    >>> stage_chat_url("http://h/v1/abc/chat/completions?cid=t", "router")
    'http://h/v1/abc/stage/router/chat/completions?cid=t'
    """
    parts = urlsplit(chat_url)
    base = parts.path[: -len(_CHAT)] if parts.path.endswith(_CHAT) else parts.path.rstrip("/")
    path = f"{base}/stage/{quote(stage_id, safe='')}{_CHAT}"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))
