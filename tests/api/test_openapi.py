"""The API definition tells the truth: schemathesis, every check and every phase, zero failures.

Its command line runs against a live server on the session build (memory and PostGIS) with
``schemathesis.toml`` and ``schemathesis_hooks.py``: statuses, media types and response
schemas as documented, schema-valid requests accepted and invalid ones refused, no 5xx, 405
with ``Allow`` for other methods. Bounded by examples per operation and by time.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from geo_service.api.openapi import OPERATIONS
from tests.conftest import ROOT

HERE = Path(__file__).parent
EXAMPLES = 40


def test_schemathesis_finds_nothing_the_document_does_not_say(url: str) -> None:
    st = Path(sys.executable).with_name("st")
    run = subprocess.run(
        [
            str(st),
            "--config-file",
            str(HERE / "schemathesis.toml"),
            "run",
            f"{url}/openapi.json",
            "--max-examples",
            str(EXAMPLES),
            "--workers",
            "1",
            "--no-color",
        ],
        cwd=ROOT,
        env={**os.environ, "RISKMAP_TEST_URL": url, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-6000:]
    assert "No issues found" in report, report[-3000:]
    tested = httpx.get(f"{url}/openapi.json").json()["paths"]
    assert set(tested) == set(OPERATIONS)


def test_document_names_the_standard_parameters_and_every_status(url: str) -> None:
    doc = httpx.get(f"{url}/openapi.json").json()
    items = doc["paths"]["/collections/{collectionId}/items"]["get"]
    refs = {p.get("$ref") for p in items["parameters"]}
    assert {"#/components/parameters/limit", "#/components/parameters/bbox"} <= refs
    limit = doc["components"]["parameters"]["limit"]["schema"]
    assert limit["maximum"] == 10_000 and limit["default"] == 100
    assert set(items["responses"]) == {"200", "304", "400", "401", "404", "413", "414", "503"}
    assert {"application/geo+json", "text/html", "text/csv"} <= set(
        items["responses"]["200"]["content"]
    )
    assert "application/json" not in doc["paths"]["/maps"]["get"]["responses"]["200"]["content"]
    assert not any("422" in op["responses"] for ops in doc["paths"].values() for op in ops.values())
    assert "{collection_id}" not in str(doc["paths"])
    error = doc["components"]["responses"]["400"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/Exception"}
    wrong = httpx.get(f"{url}/collections/community_risk/items?limit=0").json()
    assert set(wrong) == {"code", "description"} and "limit" in wrong["description"]
