"""GET /openapi.json: the OpenAPI 3 document of the whole API (public, like the docs it feeds).

The document is ``chalicelib/openapi.json`` (kept in the repository, built by
``python -m chalicelib.api.openapi_spec --write``); it is read once per process.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from chalice import Blueprint, Response

from .http import Ctx, endpoint

openapi_bp = Blueprint(__name__)
DOCUMENT = Path(__file__).resolve().parents[1] / "openapi.json"


@lru_cache(maxsize=1)
def document_text() -> str:
    return DOCUMENT.read_text(encoding="utf-8")


@endpoint(openapi_bp, "/openapi.json", ["GET"], role=None)
def openapi_document(ctx: Ctx) -> Any:
    return Response(body=document_text(), status_code=200,
                    headers={"Content-Type": "application/json", "Cache-Control": "public, max-age=300"})


def served_document() -> dict[str, Any]:
    return json.loads(document_text())
