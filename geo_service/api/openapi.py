"""The API definition as OpenAPI 3.0, which OGC API – Features names (``oas30``).

FastAPI writes OpenAPI 3.1 (JSON Schema 2020-12): optional values as ``anyOf`` with
``{"type": "null"}``, ``examples`` lists, ``const``. 3.0 has ``nullable``, ``example`` and
``enum`` for these, and clients that read 3.0 (OGC validators, older generators) refuse the 3.1
forms, so the document is rewritten once, when first asked for.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

VERSION = "3.0.3"


def to_oas30(node: Any) -> Any:
    """A 3.1 schema tree rewritten in 3.0 terms."""
    if isinstance(node, list):
        return [to_oas30(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_oas30(v) for k, v in node.items()}
    for key in ("anyOf", "oneOf"):
        options = out.get(key)
        if isinstance(options, list) and {"type": "null"} in options:
            rest = [o for o in options if o != {"type": "null"}]
            out.pop(key)
            if len(rest) == 1:
                out.update(rest[0])
            else:
                out[key] = rest
            out["nullable"] = True
    if "const" in out:
        out["enum"] = [out.pop("const")]
    if isinstance(out.get("examples"), list) and "schema" not in out:
        examples = out.pop("examples")
        if examples:
            out["example"] = examples[0]
    if isinstance(out.get("type"), list):  # ["string", "null"]
        types = [t for t in out["type"] if t != "null"]
        if len(types) < len(out["type"]):
            out["nullable"] = True
        out["type"] = types[0] if len(types) == 1 else types
    return out


def install(app: FastAPI) -> None:
    """Serve the 3.0 rewrite at ``/openapi.json``."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=VERSION,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = to_oas30(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
