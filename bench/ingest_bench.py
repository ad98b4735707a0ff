"""Benchmark of CSV ingest: reading and validating UCDP incident rows against a parse-only floor.

Why: the requirement is that reading and validating 1,000,000 incident rows from CSV takes at
most 3x the time pyarrow needs just to parse the same file (the floor), with a peak memory of at
most 2 GB, and that we can show how time grows at 100k, 300k and 1M rows.

How:

* ``make-data`` resamples the real UCDP GED rows for the Central African Republic (with
  replacement, fixed seed) into ``bench/data/ucdp_resampled_{100k,300k,1m}.csv``. Every row gets
  a new unique ``id``, its longitude/latitude jittered by up to +-0.05 degree (clipped to the
  source's bounding box) and ``date_start``/``date_end`` shifted by the same whole number of days
  within +-30; every other column is copied from the source row as text. Fields are quoted
  by the csv module's minimal quoting (the bytes ``DataFrame.to_csv`` writes), so quoted fields
  with embedded newlines stay valid CSV. Records end with CRLF, as in the source.
* ``run`` measures, per size and repeat, alternately the floor (``pyarrow.csv.read_csv``: all
  columns, type inference, multithreaded; default options except ``newlines_in_values=True``,
  without which Arrow refuses these files) and ours (``validate_source`` on the
  ``ucdp_ged_caf`` catalog entry pointed at the resampled file), each in a fresh Python process.
  The child times only the work with ``time.perf_counter()`` (interpreter start, imports and
  loading the catalog are outside the timed span) and reports its peak RSS (``ru_maxrss``, in
  MiB, which includes the imported libraries).
  Before each measurement it waits (at most 60 s) for the machine to be at least 80 % idle and
  records the idle share. Results go to ``bench/results/ingest-YYYYmmdd-HHMMSS.tsv``.

Run from the repository root::

    .venv/bin/python bench/ingest_bench.py make-data
    .venv/bin/python bench/ingest_bench.py run --sizes 100k,300k,1m --repeats 3

This is run by hand; it is not part of the test suite.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import benchlib
from benchlib import BENCH, RESULTS, ROOT, fmt, mmm, print_table, wait_for_idle

DATA = BENCH / "data"
CATALOG = ROOT / "layers" / "sources.toml"
SOURCE_KEY = "ucdp_ged_caf"
SOURCE_CSV = ROOT / "layers" / "sources" / "ucdp_ged_v23_1_caf" / "ucdp_ged_v23_1_caf.csv"

SIZES = {"100k": 100_000, "300k": 300_000, "1m": 1_000_000}
SEED = 20231
ID_BASE = 10_000_000
JITTER_DEG = 0.05
SHIFT_DAYS = 30
IDLE_TARGET = 0.80
IDLE_WAIT_S = 60.0
CHILD_TIMEOUT_S = 900
TSV_COLUMNS = [
    "size",
    "rows",
    "repeat",
    "which",
    "seconds",
    "peak_rss_mb",
    "idle_before",
    "kept",
    "problems",
]


def data_path(size: str) -> Path:
    return DATA / f"ucdp_resampled_{size}.csv"


def parse_sizes(text: str) -> list[str]:
    sizes = [s.strip().lower() for s in text.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        raise SystemExit(f"unknown size(s) {', '.join(unknown)}; choose from {', '.join(SIZES)}")
    return sizes


# --- make-data --------------------------------------------------------------------------------


def _csv_text(values: list[str]) -> str:
    """Fields as one CSV line fragment, quoted like pandas ``to_csv`` (csv.QUOTE_MINIMAL)."""
    buf = io.StringIO()
    # The writer quotes fields holding a character of its line terminator, so that must be a
    # real one (an empty terminator would leave embedded newlines unquoted).
    csv.writer(buf, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n").writerow(values)
    return buf.getvalue().removesuffix("\r\n")


def make_data(sizes: list[str], seed: int) -> None:
    import numpy as np
    import pandas as pd

    src = pd.read_csv(SOURCE_CSV, dtype=str, keep_default_na=False, encoding="utf-8")
    columns = list(src.columns)
    lon = src["longitude"].astype("float64").to_numpy()
    lat = src["latitude"].astype("float64").to_numpy()
    bbox = (lon.min(), lat.min(), lon.max(), lat.max())
    days = {}
    for col in ("date_start", "date_end"):
        if not src[col].str.endswith("T00:00:00").all():
            raise SystemExit(f"{SOURCE_CSV.name}: {col} is not always YYYY-MM-DDT00:00:00")
        days[col] = pd.to_datetime(src[col], format="%Y-%m-%dT%H:%M:%S").to_numpy(
            dtype="datetime64[D]"
        )
    # Columns copied from the source row are serialised once per source row, in runs between
    # the columns that change; a resampled line is then a concatenation of fragments. This
    # writes the same bytes as DataFrame.to_csv(quoting=QUOTE_MINIMAL) in a fraction of the time.
    varying = {"id", "longitude", "latitude", *days}
    parts: list[str | np.ndarray] = []
    run: list[str] = []
    for col in [*columns, None]:
        if col is not None and col not in varying:
            run.append(col)
            continue
        if run:
            rows = src[run].itertuples(index=False, name=None)
            parts.append(np.asarray([_csv_text(list(r)) for r in rows], dtype=object))
            run = []
        if col is not None:
            parts.append(col)
    header = _csv_text(columns)
    DATA.mkdir(parents=True, exist_ok=True)
    for size in sizes:
        n = SIZES[size]
        t0 = time.perf_counter()
        rng = np.random.default_rng(seed)
        pick = rng.integers(0, len(src), n)
        jlon = np.clip(lon[pick] + rng.uniform(-JITTER_DEG, JITTER_DEG, n), bbox[0], bbox[2])
        jlat = np.clip(lat[pick] + rng.uniform(-JITTER_DEG, JITTER_DEG, n), bbox[1], bbox[3])
        shift = rng.integers(-SHIFT_DAYS, SHIFT_DAYS + 1, n).astype("timedelta64[D]")
        fields = {
            "id": np.arange(ID_BASE, ID_BASE + n).astype(str).astype(object),
            "longitude": np.asarray([f"{x:.6f}" for x in jlon], dtype=object),
            "latitude": np.asarray([f"{y:.6f}" for y in jlat], dtype=object),
        }
        for col, d in days.items():
            fields[col] = np.char.add((d[pick] + shift).astype(str), "T00:00:00").astype(object)
        pieces = [fields[p] if isinstance(p, str) else p[pick] for p in parts]
        line = [",".join(t) for t in zip(*pieces, strict=True)]
        target = data_path(size)
        tmp = target.with_suffix(".csv.tmp")
        # The source ends records with CRLF; embedded newlines stay inside quoted fields.
        with tmp.open("w", encoding="utf-8", newline="") as fh:
            fh.write(header + "\r\n")
            for i in range(0, n, 100_000):
                fh.write("\r\n".join(line[i : i + 100_000]) + "\r\n")
        tmp.replace(target)
        mb = target.stat().st_size / 1e6
        took = time.perf_counter() - t0
        print(f"{target.relative_to(ROOT)}: {n:,} rows, {mb:,.0f} MB, {took:.1f} s")


# --- one measurement (runs in a fresh process) ------------------------------------------------


def measure(which: str, path: Path) -> dict[str, object]:
    import resource

    if which == "floor":
        import pyarrow.csv as pacsv

        # Default options except newlines_in_values: the file has quoted fields spanning lines,
        # and with the default (False) Arrow stops with "CSV parser got out of sync with chunker".
        parse = pacsv.ParseOptions(newlines_in_values=True)
        t0 = time.perf_counter()
        table = pacsv.read_csv(path, parse_options=parse)
        seconds = time.perf_counter() - t0
        kept: int | None = table.num_rows
        problems: int | None = None
    elif which == "ours":
        from geo_service.catalog import load_catalog
        from geo_service.ingest.validate import validate_source

        cat = load_catalog(CATALOG)
        entry = next(e for e in cat.sources if e.key == SOURCE_KEY).model_copy(
            update={"path": path}
        )
        t0 = time.perf_counter()
        result = validate_source(entry, cat.reference)
        seconds = time.perf_counter() - t0
        kept = result.counts["kept"]
        problems = len(result.problems)
    else:
        raise SystemExit(f"unknown measurement {which!r}")
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    # peak_rss_mb is in MiB (2**20 bytes).
    return {"seconds": seconds, "peak_rss_mb": peak_kib / 1024, "kept": kept, "problems": problems}


# --- run ---------------------------------------------------------------------------------------


def run_child(which: str, path: Path) -> dict[str, object]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "measure", which, str(path)]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, cwd=ROOT, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def code_fingerprint() -> str:
    """SHA-256 (12 hex) of the code and catalog a measurement runs, to spot edits mid-run."""
    return benchlib.code_fingerprint([CATALOG])


def git_head() -> str:
    """The checked-out commit and whether geo_service/ or the catalog differ from it."""
    return benchlib.git_head(["geo_service", "layers/sources.toml"])


def run(sizes: list[str], repeats: int) -> Path:
    missing = [str(data_path(s).relative_to(ROOT)) for s in sizes if not data_path(s).exists()]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: run make-data first")
    before = code_fingerprint()
    print(f"commit {git_head()}, code fingerprint {before}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"ingest-{dt.datetime.now():%Y%m%d-%H%M%S}.tsv"
    rows: list[dict[str, object]] = []
    with out.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, TSV_COLUMNS, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        for size in sizes:
            n = SIZES[size]
            for repeat in range(1, repeats + 1):
                for which in ("floor", "ours"):
                    idle = wait_for_idle(IDLE_TARGET, IDLE_WAIT_S)
                    res = run_child(which, data_path(size))
                    row = {"size": size, "rows": n, "repeat": repeat, "which": which}
                    row |= {"idle_before": idle, **res}
                    rows.append(row)
                    writer.writerow({k: fmt(row[k]) for k in TSV_COLUMNS})
                    fh.flush()
                    print(
                        f"{size:>5} #{repeat} {which:<5} {res['seconds']:7.2f} s "
                        f"{res['peak_rss_mb']:8.0f} MiB  idle {idle:.0%}  kept {res['kept']}"
                        + (f"  problems {res['problems']}" if which == "ours" else "")
                    )
                    if res["kept"] != n:
                        print(
                            f"ERROR: {which} at {size} kept {res['kept']} rows, expected {n}",
                            file=sys.stderr,
                        )
    after = code_fingerprint()
    if after != before:
        print(
            f"WARNING: geo_service or the catalog changed during the run ({before} -> {after});"
            " the measurements mix code versions",
            file=sys.stderr,
        )
    print(f"\nwrote {out.relative_to(ROOT)} (code fingerprint {after})\n")
    print_summary(rows)
    return out


def summarise(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """Per size: median/min/max seconds of floor and ours, ratio per repeat, peak RSS."""
    table = []
    for size in dict.fromkeys(str(r["size"]) for r in rows):
        mine = [r for r in rows if r["size"] == size]
        by = {w: {int(r["repeat"]): r for r in mine if r["which"] == w} for w in ("floor", "ours")}
        secs = {w: [float(r["seconds"]) for r in by[w].values()] for w in by}
        ratios = [
            float(by["ours"][k]["seconds"]) / float(by["floor"][k]["seconds"])
            for k in by["floor"]
            if k in by["ours"]
        ]
        rss = {w: [float(r["peak_rss_mb"]) for r in by[w].values()] for w in by}
        table.append(
            {
                "size": size,
                "rows": int(mine[0]["rows"]),
                "floor": secs["floor"],
                "ours": secs["ours"],
                "ratio": ratios,
                "floor_rss": rss["floor"],
                "ours_rss": rss["ours"],
            }
        )
    return table


def print_summary(rows: list[dict[str, object]]) -> None:
    head = ["size", "rows", "floor s", "ours s", "ours/floor", "ours peak MiB", "floor peak MiB"]
    lines = [head]
    for t in summarise(rows):
        lines.append(
            [
                str(t["size"]),
                f"{t['rows']:,}",
                mmm(t["floor"]),
                mmm(t["ours"]),
                mmm(t["ratio"]),
                mmm(t["ours_rss"], "{:.0f}"),
                mmm(t["floor_rss"], "{:.0f}"),
            ]
        )
    print_table(lines, "median (min–max) over repeats; ratio computed per repeat")


def summary_of(tsv: Path) -> None:
    with tsv.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    print_summary(rows)


# --- CLI ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("make-data", help="write the resampled CSVs under bench/data/")
    p.add_argument("--sizes", default=",".join(SIZES), help="comma-separated, e.g. 100k,1m")
    p.add_argument("--seed", type=int, default=SEED)
    p = sub.add_parser("run", help="measure floor and ours, write a TSV, print a summary")
    p.add_argument("--sizes", default=",".join(SIZES), help="comma-separated, e.g. 100k,1m")
    p.add_argument("--repeats", type=int, default=3)
    p = sub.add_parser("summary", help="print the summary table of an earlier run's TSV")
    p.add_argument("tsv", type=Path)
    p = sub.add_parser("measure", help="one measurement in this process (used by run)")
    p.add_argument("which", choices=["floor", "ours"])
    p.add_argument("path", type=Path)
    args = parser.parse_args(argv)

    if args.command == "make-data":
        make_data(parse_sizes(args.sizes), args.seed)
    elif args.command == "run":
        if not 1 <= args.repeats <= 20:
            raise SystemExit("--repeats must be between 1 and 20")
        run(parse_sizes(args.sizes), args.repeats)
    elif args.command == "summary":
        summary_of(args.tsv)
    else:
        print(json.dumps(measure(args.which, args.path.resolve())))


if __name__ == "__main__":
    main()
