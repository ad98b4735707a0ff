"""Vector tiles of the 100,000-point layer of ``api_bench.py``, per zoom: size and time.

Why: the analysts' API issue asks that any vector tile of a 100,000-point layer be at most
500 KB and answer in at most 100 ms warm, points grouped below the layer's detail zoom as the
map pages group them, and the sizes and times per zoom written down.

How (``run``): our server (one uvicorn worker pinned to core 0) on the ``api_bench.py``
build (``make-data``: 100,000 incidents over a Sierra-Leone-sized box, 70 % round 60
hotspots), and the same server at ``--before`` (a git worktree, same virtual environment) for
the figures of every property and every point. Per zoom 0–14: the tiles over the box, at most
``--per-zoom`` of them — the densest first (counted from the points), then a seeded sample.
Each tile is asked for once (cold: the first request for it in this process; the first
grouped tile of the layer also groups the whole layer) and then three times (warm, the
median kept), sequentially on one keep-alive connection, without compression. Results go to
``bench/results/tiles-*.tsv``; ``summary`` prints per zoom and target the tiles' median and
largest size, cold and warm times. Run from the repository root::

    .venv/bin/python bench/api_bench.py make-data     # once
    .venv/bin/python bench/tiles_bench.py run --before 6e64c5f
    .venv/bin/python bench/tiles_bench.py summary bench/results/tiles-*.tsv

This is run by hand; it is not part of the test suite.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import http.client
import os
import random
import statistics
import time
from pathlib import Path

from api_bench import BBOX, DATA, _command
from benchlib import RESULTS, RUN, git_commit, print_table, start_server, stop_server, wait_for_idle
from store_bench import worktree

PORT = 18298
ZOOMS = range(0, 15)
LAYER = "incidents"


def tiles_by_density(per_zoom: int, seed: int) -> dict[int, list[tuple[int, int, int]]]:
    """Per zoom, the tiles to ask for: the densest first, then a seeded sample of the rest."""
    import geopandas as gpd
    import morecantile
    import numpy as np
    import shapely

    tms = morecantile.tms.get("WebMercatorQuad")
    points = gpd.read_parquet(DATA / "build" / "bench" / "incidents.parquet").geometry.values
    lon, lat = shapely.get_x(points), shapely.get_y(points)
    out = {}
    for z in ZOOMS:
        every = [(t.z, t.x, t.y) for t in tms.tiles(*BBOX, zooms=[z])]
        n = 2**z
        x = np.clip(((lon + 180) / 360 * n).astype(int), 0, n - 1)
        rad = np.radians(lat)
        y = np.clip(((1 - np.arcsinh(np.tan(rad)) / np.pi) / 2 * n).astype(int), 0, n - 1)
        keys, counts = np.unique(x * n + y, return_counts=True)
        dense = [(z, int(k // n), int(k % n)) for k in keys[np.argsort(-counts)][:5]]
        rest = [t for t in every if t not in dense]
        random.Random(seed + z).shuffle(rest)
        out[z] = (dense + rest)[:per_zoom]
    return out


def measure(port: int, path: str) -> tuple[float, int]:
    """Milliseconds and bytes of one GET (a fresh connection each: no keep-alive to reuse
    across a server that may be busy grouping)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    start = time.perf_counter()
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    elapsed = (time.perf_counter() - start) * 1000
    conn.close()
    if response.status != 200:
        raise SystemExit(f"{path}: HTTP {response.status}")
    return elapsed, len(body)


def run(before: str, per_zoom: int, seed: int) -> Path:
    tiles = tiles_by_density(per_zoom, seed)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"tiles-{stamp}.tsv"
    commit = git_commit()
    rows = []
    for target in ("ours", "before"):
        cmd, env, cwd = _command("ours")
        cmd = [c if c != "18293" else str(PORT) for c in cmd]
        if target == "before":
            cwd = worktree(before)
            env = dict(env, PYTHONPATH=str(cwd))
        wait_for_idle(0.85)
        proc = start_server(f"tiles-{target}", cmd, PORT, env=env, cwd=cwd, ready_path="/health")
        try:
            load_ms, _ = measure(PORT, f"/collections/{LAYER}/items?limit=1")
            for z, chosen in tiles.items():
                for tz, tx, ty in chosen:
                    path = f"/tiles/{LAYER}/{tz}/{tx}/{ty}.mvt"
                    cold, size = measure(PORT, path)
                    warm = statistics.median(measure(PORT, path)[0] for _ in range(3))
                    rows.append(
                        {
                            "target": target,
                            "commit": commit if target == "ours" else before,
                            "zoom": tz,
                            "tile": f"{tz}/{tx}/{ty}",
                            "bytes": size,
                            "cold_ms": round(cold, 2),
                            "warm_ms": round(warm, 2),
                            "layer_load_ms": round(load_ms, 1),
                        }
                    )
                print(f"{target} z{z}: {len(chosen)} tiles", flush=True)
        finally:
            stop_server(proc)
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {out}")
    return out


def summary(paths: list[Path]) -> None:
    rows = [r for p in paths for r in csv.DictReader(p.open(), delimiter="\t")]
    lines = [
        [
            "zoom",
            "target",
            "tiles",
            "KB median",
            "KB max",
            "cold ms median",
            "cold ms max",
            "warm ms median",
            "warm ms max",
        ]
    ]
    for z in ZOOMS:
        for target in ("ours", "before"):
            got = [r for r in rows if int(r["zoom"]) == z and r["target"] == target]
            if not got:
                continue
            kb = [int(r["bytes"]) / 1000 for r in got]
            cold = [float(r["cold_ms"]) for r in got]
            warm = [float(r["warm_ms"]) for r in got]
            lines.append(
                [
                    str(z),
                    target,
                    str(len(got)),
                    f"{statistics.median(kb):.1f}",
                    f"{max(kb):.1f}",
                    f"{statistics.median(cold):.1f}",
                    f"{max(cold):.1f}",
                    f"{statistics.median(warm):.2f}",
                    f"{max(warm):.2f}",
                ]
            )
    print_table(lines, "Vector tiles of 100,000 points, per zoom")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--before", default="6e64c5f")
    r.add_argument("--per-zoom", type=int, default=20)
    r.add_argument("--seed", type=int, default=42)
    s = sub.add_parser("summary")
    s.add_argument("paths", nargs="+", type=Path)
    args = parser.parse_args()
    RUN.mkdir(exist_ok=True)
    os.chdir(Path(__file__).resolve().parents[1])
    if args.command == "run":
        run(args.before, args.per_zoom, args.seed)
    else:
        summary(args.paths)


if __name__ == "__main__":
    main()
