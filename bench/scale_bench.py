"""The risk surface and factors at continent scale, in one process and on 1 and 2 Dask workers.

Why: builds that outgrow one machine run the surface's tiles as Dask tasks
(``riskmap build --workers N``). The requirement: a run made from the real bundled evidence
resampled at real densities — at least 2 million communities, 1 million incidents, 20,000
concession polygons, 5,000 dams — with a 250 m surface over a box the size of the Congo
basin, on 1 and 2 local workers of one thread each: 2 workers at least 1.7× faster than 1 for
the surface, at most 4 GB peak memory per worker; and the same bytes whatever the mode.

How:

* data: ``risk_bench.py make-data --sizes continent`` (``bench/data/risk_continent/``: the
  full size of ``risk_bench.py`` with 2,000,000 communities; lon 12..31, lat −13..5).
* ``measure MODE`` (a fresh process per measurement): reads the layers, then times
  ``compute_surface`` at ``--cell-m`` (250) as a build calls it — its regions memory-mapped in
  a scratch folder, the tiles computed in this process (``here``) or on a ``LocalCluster`` of
  N worker processes of one thread (``dask-N``), started before the clock starts — then
  ``write_cog``. Peak memory: ``ru_maxrss`` of each worker process (asked of the workers at
  the end) and of this process, and this process's peak of anonymous memory (sampled every
  0.1 s from ``/proc/self/status``: ``ru_maxrss`` also counts the pages of the memory-mapped
  regions, which the kernel can drop at will). The COG's SHA-256 shows the bytes are the same.
* ``--part factors`` times the three per-community factors instead
  (``model.partitioned_model``: the communities a partition at a time, each partition a task
  on the cluster, with the steps that sum over communities), with a SHA-256 of every value,
  evidence list and the consequence layer; then what ``run_risk`` does in the build's own
  process once the partitions are done (the surface left out), per step.
* ``--box`` keeps only the features inside a lon/lat box: the same density on a smaller
  area, to measure the cost of a cell at a finer size (``--cell-m 100``) in little time.
* ``run`` measures every mode of ``--modes``, ``--repeats`` times, order rotated, waiting for
  an idle machine before each; rows go to ``bench/results/scale-YYYYmmdd-HHMMSS.tsv``.

Run from the repository root::

    .venv/bin/python bench/risk_bench.py make-data --sizes continent   # once
    .venv/bin/python bench/scale_bench.py run --modes here,dask-1,dask-2 --repeats 2

This is run by hand; it is not part of the test suite.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import json
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import benchlib
import risk_bench
from benchlib import RESULTS, ROOT, fmt, print_table, wait_for_idle

SIZE = "continent"
#: What ``run_risk`` does in the build's process once the partitions are done, timed apart.
REST_STEPS = ("combine", "concession_risk", "risk_hex", "people_exposed")
CHILD_TIMEOUT_S = 5400
COLUMNS = [
    "mode",
    "repeat",
    "status",
    "commit",
    "fingerprint",
    "idle_before",
    "box",
    "cell_m",
    "width",
    "height",
    "computed_cells",
    "tiles_computed",
    "tiles_skipped",
    "incidents",
    "communities",
    "concessions",
    "tailings_dams",
    "load_seconds",
    "cluster_seconds",
    "surface_seconds",
    "cog_seconds",
    "cog_mb",
    "cog_sha256",
    "worker_peak_rss_mb",
    "driver_peak_rss_mb",
    "driver_peak_anon_mb",
    "tile_seconds",
    "worker_busy_max_s",
    "worker_busy_min_s",
    "tiles_span_s",
    "part",
    "factors_seconds",
    "factors_sha256",
    "values_sha256",
    "rest_seconds",
    *[f"rest_{k}_seconds" for k in REST_STEPS],
    "partitions",
    "largest_partition",
]


class AnonPeak:
    """This process's peak of anonymous memory (``RssAnon``), sampled in a thread."""

    def __init__(self, every_s: float = 0.1) -> None:
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every_s,), daemon=True)

    def _run(self, every_s: float) -> None:
        while not self._stop.is_set():
            self.sample()
            time.sleep(every_s)

    def sample(self) -> None:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("RssAnon:"):
                    self.peak_kib = max(self.peak_kib, int(line.split()[1]))

    def __enter__(self) -> AnonPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def _peak_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _inside(layers: dict, box: tuple[float, float, float, float]) -> dict:  # type: ignore[type-arg]
    """The layers' features whose representative point lies in ``box`` (lon/lat)."""
    import shapely

    out = {}
    for kind, gdf in layers.items():
        points = shapely.point_on_surface(gdf.geometry.to_numpy())
        x, y = shapely.get_x(points), shapely.get_y(points)
        keep = (x >= box[0]) & (x <= box[2]) & (y >= box[1]) & (y <= box[3])
        out[kind] = gdf[keep].reset_index(drop=True)
    return out


def _digest(results: list, sums: dict) -> str:  # type: ignore[type-arg]
    """SHA-256 of every factor's values, columns, evidence and layers, and the sums (16 hex)."""
    h = hashlib.sha256()
    for name in sorted(sums):
        h.update(sums[name].tobytes())
    for r in results:
        for values in (r.raw, r.normalised, *(r.columns[k] for k in sorted(r.columns))):
            h.update(values.tobytes())
        h.update(json.dumps(r.evidence.to_pylist()).encode())
        for name in sorted(r.layers):
            h.update(r.layers[name].drop(columns="geometry").to_csv().encode())
    return h.hexdigest()[:16]


def _values_digest(values: dict) -> str:  # type: ignore[type-arg]
    """SHA-256 of every per-community value the partitions' steps gave (16 hex)."""
    h = hashlib.sha256()
    for name in sorted(values):
        for key in sorted(values[name]):
            h.update(values[name][key].tobytes())
    return h.hexdigest()[:16]


def _load(box: tuple[float, float, float, float] | None):  # type: ignore[no-untyped-def]
    """The continent-scale layers (inside ``box`` if given), catalog, parameters, the model's
    inputs, and the seconds it took."""
    from geo_service.risk.model import risk_inputs

    t0 = time.perf_counter()
    layers, catalog, params = risk_bench.load_inputs(risk_bench.size_dir(SIZE))
    if box is not None:
        layers = _inside(layers, box)
    inputs, _ = risk_inputs(layers, catalog)
    return layers, catalog, params, inputs, time.perf_counter() - t0


def measure_factors(
    mode: str, box: tuple[float, float, float, float] | None = None
) -> dict[str, object]:
    """``model.partitioned_model`` as ``run_risk`` calls it, here or on dask-N."""
    from contextlib import ExitStack

    from geo_service.risk.model import partitioned_model

    layers, catalog, params, inputs, load_seconds = _load(box)
    with ExitStack() as stack, AnonPeak() as anon:
        t0 = time.perf_counter()
        runner, client = _runner(stack, mode)
        cluster_seconds = time.perf_counter() - t0
        stream = None
        with ExitStack() as streaming:
            if client is not None:
                from dask.distributed import get_task_stream

                stream = streaming.enter_context(get_task_stream(client))
            t0 = time.perf_counter()
            done = partitioned_model(inputs, params, runner)
            results, meta = done.results, done.metadata
            seconds = time.perf_counter() - t0
        busy = _busy(stream.data, "evaluate_partition") if stream is not None else {}
        rest = _rest_of_model(layers, catalog, params, done, runner)
        workers = (
            list(client.run(_peak_rss_kib).values()) if client is not None else [_peak_rss_kib()]
        )
    return {
        "part": "factors",
        **{k.value: len(v) for k, v in layers.items()},
        "load_seconds": load_seconds,
        "cluster_seconds": cluster_seconds,
        "factors_seconds": seconds,
        "factors_sha256": _digest(results, done.sums),
        "values_sha256": _values_digest(done.values),
        "partitions": meta["partitions"],
        "largest_partition": meta["largest"],
        "worker_peak_rss_mb": max(workers) / 1024,
        "driver_peak_rss_mb": _peak_rss_kib() / 1024,
        "driver_peak_anon_mb": anon.peak_kib / 1024,
        **busy,
        **rest,
    }


def _rest_of_model(layers, catalog, params, done, runner) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """``run_risk`` itself with the partitions already done (``done``) and the surface left
    out (measured by ``--part surface``): seconds in all and per step of ``REST_STEPS``."""
    from unittest import mock

    from geo_service.risk import model

    seconds = dict.fromkeys(REST_STEPS, 0.0)

    def timed(name: str, fn):  # type: ignore[no-untyped-def]
        def call(*args, **kwargs):  # type: ignore[no-untyped-def]
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[name] += time.perf_counter() - t0

        return call

    patches = [mock.patch.object(model, s, timed(s, getattr(model, s))) for s in REST_STEPS]
    patches += [
        mock.patch.object(model, "partitioned_model", lambda *a, **k: done),
        mock.patch.object(model, "compute_surface", lambda *a, **k: None),
    ]
    for p in patches:
        p.start()
    try:
        t0 = time.perf_counter()
        model.run_risk(layers, catalog, params, runner=runner)
        total = time.perf_counter() - t0
    finally:
        for p in patches:
            p.stop()
    return {"rest_seconds": total, **{f"rest_{k}_seconds": v for k, v in seconds.items()}}


def _runner(stack, mode: str):  # type: ignore[no-untyped-def]
    """A runner for ``mode`` (None: in this process) and the cluster's client, if any."""
    if mode == "here":
        return None, None
    if not mode.startswith("dask-"):
        raise SystemExit(f"unknown mode {mode!r}: here or dask-N")
    from dask.distributed import Client

    from geo_service.cluster import dask_runner, local_cluster

    n = int(mode.split("-", 1)[1])
    # As ``riskmap build --workers N`` starts them; memory measured, not enforced.
    cluster = stack.enter_context(local_cluster(n, dashboard=False, memory_limit=0))
    client = stack.enter_context(Client(cluster))
    client.wait_for_workers(n)
    runner = stack.enter_context(
        dask_runner(None, cluster.scheduler_address, lambda *_: _quiet, _quiet)
    )
    return runner, client


def measure(
    mode: str, cell_m: float, box: tuple[float, float, float, float] | None = None
) -> dict[str, object]:
    from contextlib import ExitStack

    from geo_service.risk import surface as surf
    from geo_service.risk.model import read_countries
    from geo_service.risk.params import SurfaceParams

    layers, catalog, params, inputs, load_seconds = _load(box)
    countries = read_countries(catalog)
    # The build's surface at cell_m, never coarsened: the requirement's lattice.
    surface_params = SurfaceParams(cell_m=cell_m, max_cells=2_000_000_000)

    with ExitStack() as stack, AnonPeak() as anon:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=risk_bench.DATA)))
        t0 = time.perf_counter()
        runner, client = _runner(stack, mode)
        cluster_seconds = time.perf_counter() - t0
        stream = None
        with ExitStack() as streaming:
            if client is not None:
                from dask.distributed import get_task_stream

                # Dask's record of every task (read once the block ends).
                stream = streaming.enter_context(get_task_stream(client))
            t0 = time.perf_counter()
            result = surf.compute_surface(
                inputs, params, surface_params, countries, runner=runner, scratch=scratch
            )
            seconds = time.perf_counter() - t0
        busy = _busy(stream.data, "compute_tile") if stream is not None else {}
        workers = (
            list(client.run(_peak_rss_kib).values()) if client is not None else [_peak_rss_kib()]
        )
        path = scratch / "risk_surface.tif"
        t0 = time.perf_counter()
        surf.write_cog(result, path)
        cog_seconds = time.perf_counter() - t0
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        cog_mb = path.stat().st_size / 2**20
        height, width = result.shape
        tiles = result.metadata["tiles"]
        computed = result.metadata.get("computed_cells")
    return {
        "part": "surface",
        "cell_m": result.cell_m,
        "width": width,
        "height": height,
        "computed_cells": computed,
        "tiles_computed": tiles["computed"],
        "tiles_skipped": tiles["skipped_unreached"],
        **{k.value: len(v) for k, v in layers.items()},
        "load_seconds": load_seconds,
        "cluster_seconds": cluster_seconds,
        "surface_seconds": seconds,
        "cog_seconds": cog_seconds,
        "cog_mb": cog_mb,
        "cog_sha256": digest[:16],
        # In one process the surface is computed in this process: its own peak.
        "worker_peak_rss_mb": max(workers) / 1024,
        "driver_peak_rss_mb": _peak_rss_kib() / 1024,
        "driver_peak_anon_mb": anon.peak_kib / 1024,
        **busy,
    }


def _busy(tasks: list[dict], name: str) -> dict[str, float]:  # type: ignore[type-arg]
    """From Dask's task stream: seconds the tasks ``name`` computed in all, and per worker."""
    per: dict[str, float] = {}
    starts, stops = [], []
    for t in tasks:
        if name not in str(t["key"]):
            continue
        for s in t["startstops"]:
            if s["action"] == "compute":
                per[t["worker"]] = per.get(t["worker"], 0.0) + s["stop"] - s["start"]
                starts.append(s["start"])
                stops.append(s["stop"])
    if not per:
        return {}
    return {
        "tile_seconds": sum(per.values()),
        "worker_busy_max_s": max(per.values()),
        "worker_busy_min_s": min(per.values()),
        "tiles_span_s": max(stops) - min(starts),
    }


def _quiet(*_: object) -> None:
    """Progress and log lines of the runner, not printed here."""


def run(
    modes: list[str],
    repeats: int,
    cell_m: float,
    rss_cap_gib: float,
    box: str | None = None,
    part: str = "surface",
) -> Path:
    folder = risk_bench.size_dir(SIZE)
    if not (folder / "manifest.json").exists():
        raise SystemExit(f"missing {folder.relative_to(ROOT)}: run risk_bench.py make-data")
    commit = risk_bench.git_head()
    before = risk_bench.code_fingerprint()
    print(f"commit {commit}, code fingerprint {before}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"scale-{dt.datetime.now():%Y%m%d-%H%M%S}.tsv"
    rows: list[dict[str, object]] = []
    with out.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, COLUMNS, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        for repeat in range(1, repeats + 1):
            shift = (repeat - 1) % len(modes)
            for mode in modes[shift:] + modes[:shift]:
                idle = wait_for_idle(risk_bench.IDLE_TARGET, risk_bench.IDLE_WAIT_S)
                res = benchlib.run_child(
                    Path(__file__),
                    ["measure", mode, "--cell-m", str(cell_m), "--part", part]
                    + (["--box", box] if box else []),
                    rss_cap_gib,
                    CHILD_TIMEOUT_S,
                )
                row = {
                    "mode": mode,
                    "repeat": repeat,
                    "commit": commit,
                    "fingerprint": before,
                    "idle_before": idle,
                    "box": box or "",
                    **res,
                }
                rows.append(row)
                writer.writerow({k: fmt(row.get(k)) for k in COLUMNS})
                fh.flush()
                if res["status"] != "ok":
                    print(f"{mode:>7} #{repeat} {res['status']}")
                    continue
                if part == "factors":
                    print(
                        f"{mode:>7} #{repeat} {res['communities']:,} communities in "
                        f"{res['partitions']} partitions: factors {res['factors_seconds']:.1f} s "
                        f"({res['factors_sha256']}), worker peak "
                        f"{res['worker_peak_rss_mb']:.0f} MiB, driver anon peak "
                        f"{res['driver_peak_anon_mb']:.0f} MiB  idle {idle:.0%}"
                        + (
                            f"; partitions {res['tile_seconds']:.1f} s of work, workers busy "
                            f"{res['worker_busy_min_s']:.1f}–{res['worker_busy_max_s']:.1f} s"
                            if res.get("tile_seconds")
                            else ""
                        )
                        + f"; then run_risk in this process {res['rest_seconds']:.1f} s ("
                        + ", ".join(f"{k} {res[f'rest_{k}_seconds']:.1f}" for k in REST_STEPS)
                        + ")"
                    )
                    continue
                print(
                    f"{mode:>7} #{repeat} {res['width']}x{res['height']} cells of "
                    f"{res['cell_m']:g} m, {res['computed_cells']:,} computed in "
                    f"{res['tiles_computed']} tiles: surface {res['surface_seconds']:.1f} s, "
                    f"COG {res['cog_seconds']:.1f} s ({res['cog_sha256']}), worker peak "
                    f"{res['worker_peak_rss_mb']:.0f} MiB, driver anon peak "
                    f"{res['driver_peak_anon_mb']:.0f} MiB  idle {idle:.0%}"
                    + (
                        f"; tiles {res['tile_seconds']:.1f} s of work, workers busy "
                        f"{res['worker_busy_min_s']:.1f}–{res['worker_busy_max_s']:.1f} s"
                        if res.get("tile_seconds")
                        else ""
                    )
                )
    if risk_bench.code_fingerprint() != before:
        print("WARNING: the code changed during the run", file=sys.stderr)
    print(f"\nwrote {out.relative_to(ROOT)}\n")
    summary(rows, part)
    return out


def summary(rows: list[dict[str, object]], part: str = "surface") -> None:
    ok = [r for r in rows if r.get("status") == "ok"]
    modes = list(dict.fromkeys(str(r["mode"]) for r in ok))
    if part == "factors":
        lines = [["mode", "factors s", "× dask-1", "worker peak MiB", "driver anon MiB"]]
        med = {
            m: {
                k: statistics.median(float(r[k]) for r in ok if r["mode"] == m)  # type: ignore[arg-type]
                for k in ("factors_seconds", "worker_peak_rss_mb", "driver_peak_anon_mb")
            }
            for m in modes
        }
        one = med.get("dask-1", {}).get("factors_seconds")
        for m in modes:
            s = med[m]["factors_seconds"]
            lines.append(
                [
                    m,
                    f"{s:.1f}",
                    f"{one / s:.2f}" if one else "",
                    f"{med[m]['worker_peak_rss_mb']:.0f}",
                    f"{med[m]['driver_peak_anon_mb']:.0f}",
                ]
            )
        print_table(lines, "medians")
        digests = {str(r["factors_sha256"]) for r in ok}
        print(f"factors SHA-256 (16 hex) over every run: {', '.join(sorted(digests))}")
        values = {str(r.get("values_sha256", "")) for r in ok}
        print(f"per-community values SHA-256 over every run: {', '.join(sorted(values))}")
        return
    med = {
        m: {
            k: statistics.median(float(r[k]) for r in ok if r["mode"] == m)  # type: ignore[arg-type]
            for k in (
                "surface_seconds",
                "cog_seconds",
                "worker_peak_rss_mb",
                "driver_peak_anon_mb",
                "driver_peak_rss_mb",
            )
        }
        for m in modes
    }
    one = med.get("dask-1", {}).get("surface_seconds")
    lines = [["mode", "surface s", "× dask-1", "COG s", "worker peak MiB", "driver anon MiB"]]
    for m in modes:
        s = med[m]["surface_seconds"]
        lines.append(
            [
                m,
                f"{s:.1f}",
                f"{one / s:.2f}" if one else "",
                f"{med[m]['cog_seconds']:.1f}",
                f"{med[m]['worker_peak_rss_mb']:.0f}",
                f"{med[m]['driver_peak_anon_mb']:.0f}",
            ]
        )
    print_table(lines, "medians")
    digests = {str(r["cog_sha256"]) for r in ok}
    print(f"COG SHA-256 (16 hex) over every run: {', '.join(sorted(digests))}")


BOX_HELP = (
    "only the evidence inside lon_min,lat_min,lon_max,lat_max (a cost per cell at a finer cell)"
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="measure every mode, write a TSV under bench/results/")
    p.add_argument("--modes", default="here,dask-1,dask-2")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--cell-m", type=float, default=250.0)
    p.add_argument("--rss-cap-gib", type=float, default=16.0)
    p.add_argument("--box", help=BOX_HELP)
    p.add_argument("--part", choices=["surface", "factors"], default="surface")
    p = sub.add_parser("measure", help="one measurement in this process (used by run)")
    p.add_argument("mode")
    p.add_argument("--cell-m", type=float, default=250.0)
    p.add_argument("--box", help=BOX_HELP)
    p.add_argument("--part", choices=["surface", "factors"], default="surface")
    args = parser.parse_args(argv)
    if args.command == "run":
        modes = [m.strip() for m in args.modes.split(",") if m.strip()]
        run(modes, args.repeats, args.cell_m, args.rss_cap_gib, args.box, args.part)
    else:
        box = tuple(float(v) for v in args.box.split(",")) if args.box else None
        if args.part == "factors":
            print(json.dumps(measure_factors(args.mode, box)))  # type: ignore[arg-type]
        else:
            print(json.dumps(measure(args.mode, args.cell_m, box)))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
