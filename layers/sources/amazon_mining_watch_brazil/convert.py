"""Convert the Amazon Mining Watch GeoJSON extract to the GeoParquet bundled here.

Values and geometries are unchanged (float64 coordinates, the publisher's rings as read); two
columns are added: ``amw_id``, a stable id (the period and the first 10 hex digits of the
SHA-1 of the polygon's little-endian 2D WKB, so the same polygon keeps its id whatever the
file's order), and ``period_label``, the period code in words. Run from the repository root:

    .venv/bin/python layers/sources/amazon_mining_watch_brazil/convert.py SOURCE.geojson
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pyogrio
import shapely

HERE = Path(__file__).parent
TARGET = HERE / "amw_brazil_2018_2025Q3.parquet"
LABELS = {201800: "2018 or before", 202502: "2025 Q2", 202503: "2025 Q3"}


def main(source: Path) -> None:
    """Read ``source``, add the id and label columns, write ``TARGET``."""
    frame = pyogrio.read_dataframe(source)
    wkb = shapely.to_wkb(frame.geometry.to_numpy(), output_dimension=2, byte_order=1)
    digests = [hashlib.sha1(b).hexdigest()[:10] for b in wkb]
    frame.insert(0, "amw_id", [f"{p}-{d}" for p, d in zip(frame["period"], digests, strict=True)])
    if frame["amw_id"].duplicated().any():
        raise SystemExit("two polygons share an id: lengthen the digest")
    frame.insert(
        2, "period_label", [LABELS.get(int(p), str(int(p) // 100)) for p in frame["period"]]
    )
    frame.to_parquet(TARGET, index=False, compression="zstd", write_covering_bbox=False)
    print(f"{len(frame)} polygons → {TARGET} ({TARGET.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
