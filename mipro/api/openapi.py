"""The API's OpenAPI document, as committed in docs/openapi.json.

    python -m mipro.api.openapi --write      # regenerate docs/openapi.json
    python -m mipro.api.openapi              # print it
    python -m mipro.api.openapi --check      # exit 1 when docs/openapi.json differs from the code

The document is generated from the app itself (no Temporal connection is made) and rendered stably:
sorted keys, two-space indent, a trailing newline, so a diff shows exactly what changed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
FIX = "python -m mipro.api.openapi --write"


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of the app, as FastAPI generates it."""
    from mipro.api.app import create_app
    from mipro.api.settings import ApiSettings

    return create_app(ApiSettings(api_keys="doc:unused")).openapi()


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mipro.api.openapi", description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help=f"write {DOCUMENT.name} under docs/")
    group.add_argument("--check", action="store_true", help="exit 1 when the committed document is stale")
    args = parser.parse_args(argv)
    text = render(openapi_document())
    if args.write:
        DOCUMENT.parent.mkdir(parents=True, exist_ok=True)
        DOCUMENT.write_text(text, encoding="utf-8")
        print(f"wrote {DOCUMENT}", file=sys.stderr)
    elif args.check:
        if not DOCUMENT.is_file() or DOCUMENT.read_text(encoding="utf-8") != text:
            print(f"{DOCUMENT} is out of date: run `{FIX}`", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
