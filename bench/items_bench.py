"""CPU per items request inside the application, without HTTP: where ``store_bench.py``'s
server time goes, measured steadily enough to compare two commits on a shared machine.

Each of the ``filtered.txt`` queries of ``api_bench.py`` (100 boxes, ``limit=100``, the CQL2
filter ``score > 50``) is sent through the whole ASGI application (middleware, routing,
parameters, store, GeoJSON) by a direct call, once to warm up and then ``--rounds`` times in
``--repeats`` timed passes; each pass reports the process's CPU time (every thread) per
request, and the median pass is kept. The answers must all be 200. With ``--store-url`` the
build is read from that PostGIS database (published there before): the database's own CPU is
then not counted. Run from the repository root, pinned to one core::

    taskset -c 0 .venv/bin/python bench/items_bench.py
    PYTHONPATH=/path/to/worktree taskset -c 0 .venv/bin/python bench/items_bench.py  # another commit

This is run by hand; it is not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "api"


async def _call(app: object, path: str, query: str) -> int:
    """One GET through the application; its status."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"accept-encoding", b"identity")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)  # type: ignore[operator]
    return int(sent[0]["status"])


async def _measure(args: argparse.Namespace) -> list[float]:
    from geo_service.api.app import create_app

    app = create_app()
    queries = [q for q in args.urls.read_text().splitlines() if q.strip()]
    path = f"/collections/{args.collection}/items"
    out = []
    async with app.router.lifespan_context(app):
        statuses = {await _call(app, path, q) for q in queries}
        if statuses != {200}:
            raise SystemExit(f"answers other than 200: {sorted(statuses)}")
        for _ in range(args.repeats):
            start = time.process_time()
            for _ in range(args.rounds):
                for q in queries:
                    await _call(app, path, q)
            out.append((time.process_time() - start) / (args.rounds * len(queries)) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build-dir", type=Path, default=DATA / "build")
    parser.add_argument("--urls", type=Path, default=DATA / "filtered.txt")
    parser.add_argument("--collection", default="incidents")
    parser.add_argument("--store-url", help="a PostGIS database the build is published in")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ["RISKMAP_BUILD_DIR"] = str(args.build_dir)
    os.environ.pop("RISKMAP_STORE_URL", None)
    if args.store_url:
        os.environ["RISKMAP_STORE_URL"] = args.store_url
    passes = asyncio.run(_measure(args))
    print(
        f"CPU per request: median {statistics.median(passes):.3f} ms, "
        f"min {min(passes):.3f} ms over {len(passes)} passes"
    )


if __name__ == "__main__":
    main()
