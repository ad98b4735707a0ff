"""Geometries into EPSG:4326: from coordinates or WKT, reprojected, typed, repaired.

All checks are vectorised shapely 2 operations over the whole column; only rows that fail a
check are looked at one by one, to say what is wrong with them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer

from geo_service.errors import SourceError
from geo_service.ingest.problems import Problems, got

WGS84 = CRS.from_epsg(4326)

#: A repair keeps the shape when its area differs from the published one by at most this share.
REPAIR_TOLERANCE = 0.01


def resolve_crs(file_crs: CRS | None, declared: str | None, path: object) -> CRS:
    """The CRS to read coordinates in: the file's, or the declared one; never a guess."""
    declared_crs = None
    if declared:
        try:
            declared_crs = CRS.from_user_input(declared)
        except Exception as exc:  # pyproj raises CRSError, but be explicit about the message
            raise SourceError(
                f"declared crs '{declared}' is not a known CRS: {exc}", path=str(path)
            ) from exc
    if file_crs is None and declared_crs is None:
        raise SourceError(
            'has no CRS and none is declared: add crs = "EPSG:4326" (or the right code) to its '
            "catalog entry, or pass --crs to riskmap validate",
            path=str(path),
        )
    if file_crs is not None and declared_crs is not None and not file_crs.equals(declared_crs):
        raise SourceError(
            f"its own CRS ({file_crs.to_string()}) differs from the declared crs "
            f"'{declared}'; remove the declaration or fix the file",
            path=str(path),
        )
    return file_crs or declared_crs  # type: ignore[return-value]


def is_wgs84(crs: CRS) -> bool:
    """True for EPSG:4326 and its lon/lat twins (CRS84, OGC:CRS84)."""
    return crs.equals(WGS84, ignore_axis_order=True) or crs.to_epsg() == 4326


def to_wgs84(geoms: np.ndarray, crs: CRS) -> np.ndarray:
    """Reproject to EPSG:4326 in lon/lat order; geometries that cannot be reprojected become None."""
    if is_wgs84(crs):
        return geoms
    tr = Transformer.from_crs(crs, WGS84, always_xy=True)

    def fn(coords: np.ndarray) -> np.ndarray:
        x, y = tr.transform(coords[:, 0], coords[:, 1], errcheck=False)
        return np.column_stack([x, y])

    out = shapely.transform(geoms, fn)
    bad = ~np.isfinite(shapely.bounds(out)).all(axis=1) & ~shapely.is_missing(out)
    out[bad] = None
    return out


def points_from_columns(
    lon: pd.Series,
    lat: pd.Series,
    names: tuple[str, str],
    crs: CRS,
    problems: Problems,
    given: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """Points from coordinate columns; unusable coordinates are recorded as rejects.

    ``given`` says which rows had any text in each column, so a value that is not a number
    (already reported) is not reported again as missing.
    """
    x = lon.to_numpy(dtype="float64", na_value=np.nan)
    y = lat.to_numpy(dtype="float64", na_value=np.nan)
    geographic = crs.is_geographic
    for values, has, name, word, limit in (
        (x, given[0], names[0], "longitude", 180.0),
        (y, given[1], names[1], "latitude", 90.0),
    ):
        missing = np.isnan(values) & ~has
        problems.add(np.flatnonzero(missing), name, None, f"missing {word}", "rejected")
        if geographic:
            out = ~missing & (np.abs(values) > limit)
            idx = np.flatnonzero(out)
            problems.add(
                idx,
                name,
                values[idx],
                got(pd.Series(values[idx])).radd(f"{word} out of range −{limit:g}..{limit:g}: "),
                "rejected",
            )
    ok = np.isfinite(x) & np.isfinite(y)
    if geographic:
        ok &= (np.abs(x) <= 180) & (np.abs(y) <= 90)
    if ok.all():
        return shapely.points(x, y)
    geoms = np.full(len(x), None, dtype=object)
    geoms[ok] = shapely.points(x[ok], y[ok])
    return geoms


def from_wkt(text: pd.Series, name: str, problems: Problems) -> np.ndarray:
    """Geometries from WKT text; unparseable text is recorded as a reject."""
    values = text.to_numpy(dtype=object, na_value=None)
    geoms = shapely.from_wkt(values, on_invalid="ignore")
    bad = np.flatnonzero(shapely.is_missing(geoms) & pd.notna(values))
    problems.add(bad, name, values[bad], "not valid WKT", "rejected")
    return geoms


def check_geometries(
    geoms: np.ndarray, allowed: tuple[str, ...], problems: Problems, field: str = "geometry"
) -> np.ndarray:
    """Drop Z, unwrap single-part multi-points, check types and ranges, repair invalid shapes."""
    geoms = np.asarray(geoms, dtype=object).copy()
    present = ~shapely.is_missing(geoms)
    if shapely.has_z(geoms[present]).any():
        geoms[present] = shapely.force_2d(geoms[present])
    missing = np.flatnonzero(~present | shapely.is_empty(geoms))
    # Rows whose coordinates were already refused need no second message.
    unreported = np.setdiff1d(missing, problems.rows("rejected"))
    problems.add(unreported, field, None, "missing or empty geometry", "rejected")
    geoms[missing] = None

    types = np.asarray(shapely.get_type_id(geoms))
    single = np.flatnonzero((types == 4) & (shapely.get_num_geometries(geoms) == 1))
    if single.size and "Point" in allowed:
        geoms[single] = shapely.get_geometry(geoms[single], 0)
    names = np.array(
        [
            "Point",
            "LineString",
            "LinearRing",
            "Polygon",
            "MultiPoint",
            "MultiLineString",
            "MultiPolygon",
            "GeometryCollection",
        ],
        dtype=object,
    )
    types = np.asarray(shapely.get_type_id(geoms))
    known = types >= 0
    wrong = np.flatnonzero(known & ~np.isin(names[np.clip(types, 0, 7)], allowed))
    problems.add(
        wrong,
        field,
        names[types[wrong]],
        pd.Series(names[types[wrong]]).radd(f"expected {' or '.join(allowed)}, got "),
        "rejected",
    )
    geoms[wrong] = None

    bounds = shapely.bounds(geoms)
    with np.errstate(invalid="ignore"):
        outside = (
            (bounds[:, 0] < -180)
            | (bounds[:, 2] > 180)
            | (bounds[:, 1] < -90)
            | (bounds[:, 3] > 90)
        )
    idx = np.flatnonzero(outside)
    problems.add(
        idx,
        field,
        [shapely.to_wkt(g, rounding_precision=4)[:60] for g in geoms[idx]],
        "coordinates outside lon −180..180, lat −90..90",
        "rejected",
    )
    geoms[idx] = None
    return _repair(geoms, allowed, problems, field)


def _repair(
    geoms: np.ndarray, allowed: tuple[str, ...], problems: Problems, field: str
) -> np.ndarray:
    present = ~shapely.is_missing(geoms)
    invalid = np.flatnonzero(present & ~shapely.is_valid(np.where(present, geoms, None)))
    if invalid.size == 0:
        return geoms
    reasons = shapely.is_valid_reason(geoms[invalid])
    fixed = shapely.make_valid(geoms[invalid])
    polygonal = tuple(t for t in allowed if "Polygon" in t)
    for i, original, repaired, why in zip(invalid, geoms[invalid], fixed, reasons, strict=True):
        kept = _polygonal_part(repaired) if polygonal else repaired
        if kept is not None and _keeps_shape(original, kept):
            geoms[i] = kept
            problems.add(
                np.array([i]), field, None, f"invalid geometry ({why}) repaired", "repaired"
            )
        else:
            geoms[i] = None
            problems.add(
                np.array([i]),
                field,
                None,
                f"invalid geometry ({why}) that cannot be repaired without changing its shape",
                "rejected",
            )
    return geoms


def _polygonal_part(geom: shapely.Geometry) -> shapely.Geometry | None:
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
    if not parts:
        return None
    merged = shapely.union_all(parts)
    if merged.is_empty or merged.area == 0:
        return None
    return merged


def _keeps_shape(original: shapely.Geometry, repaired: shapely.Geometry) -> bool:
    """The repaired area matches the area the published rings enclose, within 1 %.

    For an invalid polygon GEOS still sums the rings' signed areas: a tiny self-crossing barely
    changes it, while scrambled or figure-of-eight rings give an area unlike any repair.
    """
    intended = original.area
    if intended == 0:
        return False
    return bool(abs(repaired.area - intended) <= REPAIR_TOLERANCE * intended)
