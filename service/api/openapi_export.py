"""Write the API's OpenAPI document: `python -m service.api.openapi_export openapi/openapi.json`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from service.api.app import create_app
from service.settings import Settings


def openapi_document() -> dict[str, Any]:
    # Fixed settings: the document must not depend on the environment it is generated in.
    return create_app(Settings(ingestion_uri="ingestion", processed_uri="processed")).openapi()


def render() -> str:
    return json.dumps(openapi_document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m service.api.openapi_export PATH\n")
        return 2
    path = Path(args[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(), encoding="utf-8")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
