"""Bearer keys -> orgs. Keys are held only as SHA-256 hashes and compared in constant time.

Configured by environment (`MIPRO_API_KEYS="acme:sk_...,beta:sk_..."`, hashed when loaded) and/or a file
(`MIPRO_API_KEYS_FILE`, JSON `{"keys": [{"org": "acme", "sha256": "<hex>"}]}`, which holds hashes only).
`mipro api-key ORG` prints a new key and its file entry.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from mipro.errors import MIPROConfigurationError

ORG_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"


class KeyEntry(BaseModel):
    org: str = Field(pattern=ORG_PATTERN)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class KeyFile(BaseModel):
    keys: list[KeyEntry]


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    return f"sk_mipro_{secrets.token_urlsafe(24)}"


class KeyRing:
    def __init__(self, entries: list[KeyEntry]) -> None:
        self._entries = [(bytes.fromhex(e.sha256), e.org) for e in entries]

    def __len__(self) -> int:
        return len(self._entries)

    def org_for(self, key: str) -> str | None:
        """The org of a presented key. Every entry is compared, so timing says nothing about the keys."""
        digest = hashlib.sha256(key.encode("utf-8")).digest()
        found: str | None = None
        for stored, org in self._entries:
            if hmac.compare_digest(stored, digest):
                found = org
        return found

    @classmethod
    def load(cls, env_value: str | None, file: Path | None) -> KeyRing:
        entries = _parse_env(env_value) if env_value else []
        if file is not None:
            entries += _parse_file(file)
        return cls(entries)


def _parse_env(value: str) -> list[KeyEntry]:
    entries = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        org, sep, key = item.partition(":")
        if not sep or not key or not re.match(ORG_PATTERN, org):
            raise MIPROConfigurationError(
                [("MIPRO_API_KEYS", "each entry must be org:key", "e.g. MIPRO_API_KEYS=acme:sk_mipro_...")]
            )
        entries.append(KeyEntry(org=org, sha256=hash_key(key)))
    return entries


def _parse_file(path: Path) -> list[KeyEntry]:
    try:
        return KeyFile.model_validate(json.loads(path.read_text())).keys
    except (OSError, json.JSONDecodeError, ValidationError) as exc:
        raise MIPROConfigurationError(
            [
                (
                    str(path),
                    f"cannot read the API keys file: {str(exc).splitlines()[0]}",
                    'expected JSON {"keys": [{"org": "acme", "sha256": "<hex>"}]}; see `mipro api-key`',
                )
            ]
        ) from None
