"""Offline bundles of every map: time to make each, and its size zipped and unzipped.

Why: the offline bundle issue asks that Sierra Leone's Kono bundle be at most 25 MB and the
whole overview at most 100 MB, with the time to build each written down.

How: ``riskmap bundle`` as a command (a fresh process per map, as a user runs it) on the
current build, anonymous, in English; wall time and peak memory (``/usr/bin/time``), the zip's
bytes, and the bytes of its files unzipped (from its manifest). ``--repeats`` runs each map
that many times; the median time is kept. Results go to ``bench/results/bundle-*.tsv`` and are
printed as a table. Run from the repository root, on an idle machine::

    .venv/bin/python bench/bundle_bench.py --repeats 3

This is run by hand; it is not part of the test suite.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import statistics
import subprocess
import tempfile
import zipfile
from pathlib import Path

from benchlib import RESULTS, git_commit, print_table

MAPS = (
    "overview",
    "central-african-republic",
    "drc-kasai",
    "sierra-leone-kono",
    "brazil-minas-gerais",
    "sierra-leone-chiefdoms",
    "brazil-juina",
)


def once(map_id: str, out: Path) -> tuple[float, int]:
    """Seconds and peak kilobytes of one ``riskmap bundle``."""
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%e %M", ".venv/bin/riskmap", "bundle", map_id, "--out", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    seconds, kb = done.stderr.strip().splitlines()[-1].split()
    return float(seconds), int(kb)


def main() -> None:
    """Bundle each map, then write and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--maps", default=",".join(MAPS))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for map_id in args.maps.split(","):
            out = Path(tmp) / f"{map_id}.zip"
            runs = [once(map_id, out) for _ in range(args.repeats)]
            with zipfile.ZipFile(out) as zf:
                meta = json.loads(zf.read("manifest.json"))
            unzipped = sum(f["bytes"] for f in meta["files"].values())
            rows.append(
                {
                    "map": map_id,
                    "seconds": round(statistics.median(r[0] for r in runs), 1),
                    "peak_mb": round(max(r[1] for r in runs) / 1024),
                    "zip_mb": round(out.stat().st_size / 1e6, 1),
                    "unzipped_mb": round(unzipped / 1e6, 1),
                    "files": len(meta["files"]) + 1,
                    "build_id": meta["build_id"],
                }
            )
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"bundle-{stamp}-{git_commit()}.tsv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    print_table([list(rows[0])] + [[str(v) for v in r.values()] for r in rows])
    print(f"written to {path}")


if __name__ == "__main__":
    main()
