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


def to_wgs84(
    geoms: np.ndarray, crs: CRS, problems: Problems | None = None, field: str = "geometry"
) -> np.ndarray:
    """Reproject to EPSG:4326 in lon/lat order.

    A geometry that cannot be reprojected becomes None and, given ``problems``, is rejected
    with the CRS named, rather than reported later as merely "missing". That includes
    coordinates PROJ turns into a plausible-looking place that is not theirs: a UTM northing of
    1e30 comes out as a point in the Pacific, so every coordinate is transformed back and must
    land where it started.
    """
    if is_wgs84(crs):
        return geoms
    out = np.asarray(geoms, dtype=object).copy()
    coords, owner = shapely.get_coordinates(out, return_index=True)
    if not len(coords):
        return out
    forward = Transformer.from_crs(crs, WGS84, always_xy=True)
    back = Transformer.from_crs(WGS84, crs, always_xy=True)
    x, y = forward.transform(coords[:, 0], coords[:, 1], errcheck=False)
    with np.errstate(invalid="ignore"):
        bx, by = back.transform(x, y, errcheck=False)
        ok = (
            np.isfinite(x)
            & np.isfinite(y)
            & np.isclose(bx, coords[:, 0], rtol=1e-7, atol=1e-6)
            & np.isclose(by, coords[:, 1], rtol=1e-7, atol=1e-6)
        )
    out = shapely.set_coordinates(out, np.column_stack([x, y]))
    bad = np.unique(owner[~ok])
    if problems is not None:
        problems.add(
            bad,
            field,
            [shapely.to_wkt(g, rounding_precision=2)[:60] for g in np.asarray(geoms)[bad]],
            f"cannot be reprojected from {crs.to_string()} to EPSG:4326: the coordinates lie "
            "outside what that CRS covers",
            "rejected",
        )
    out[bad] = None
    return out


def points_from_columns(
    lon: pd.Series,
    lat: pd.Series,
    names: tuple[str, str],
    crs: CRS,
    problems: Problems,
    given: tuple[np.ndarray, np.ndarray],
    unparsed: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Points from coordinate columns; unusable coordinates are recorded as rejects.

    ``given`` says which rows had any text in each column and ``unparsed`` which of those
    were already reported as not a number, so no value is reported twice; text that parses
    to NaN or infinity (``nan``, ``inf``, ``1e999``) is reported here.
    """
    x = lon.to_numpy(dtype="float64", na_value=np.nan)
    y = lat.to_numpy(dtype="float64", na_value=np.nan)
    if unparsed is None:
        unparsed = (np.zeros(len(x), dtype=bool), np.zeros(len(y), dtype=bool))
    geographic = crs.is_geographic
    for values, has, bad_text, name, word, limit in (
        (x, given[0], unparsed[0], names[0], "longitude", 180.0),
        (y, given[1], unparsed[1], names[1], "latitude", 90.0),
    ):
        missing = np.isnan(values) & ~has
        problems.add(np.flatnonzero(missing), name, None, f"missing {word}", "rejected")
        number = has & ~bad_text
        nonfinite = np.flatnonzero(number & ~np.isfinite(values))
        shown = pd.Series(values[nonfinite].astype("U"), dtype=object)  # 'nan', not nothing
        problems.add(
            nonfinite, name, shown, got(shown).radd(f"{word} is not a finite number: "), "rejected"
        )
        if geographic:
            with np.errstate(invalid="ignore"):
                out = number & np.isfinite(values) & (np.abs(values) > limit)
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


def reject_unusable_coordinates(
    geoms: np.ndarray, problems: Problems, field: str = "geometry"
) -> np.ndarray:
    """Reject coordinates no place has, as published (before any reprojection).

    NaN or infinite vertices (GeoParquet and WKT can hold them) make bounds and area
    meaningless; a point at exactly (0, 0) is "null island", the value a missing location
    becomes when software writes zeros for it, and no community, mine or incident is there.
    """
    geoms = np.asarray(geoms, dtype=object).copy()
    present = ~shapely.is_missing(geoms)
    if not present.any():
        return geoms
    coords, owner = shapely.get_coordinates(geoms, return_index=True)
    nonfinite = np.unique(owner[~np.isfinite(coords).all(axis=1)])
    problems.add(
        nonfinite,
        field,
        [shapely.to_wkt(g, rounding_precision=4)[:60] for g in geoms[nonfinite]],
        "coordinates are not finite numbers (NaN or infinity)",
        "rejected",
    )
    geoms[nonfinite] = None
    is_point = np.asarray(shapely.get_type_id(geoms)) == 0
    with np.errstate(invalid="ignore"):
        null = np.flatnonzero(is_point & (shapely.get_x(geoms) == 0) & (shapely.get_y(geoms) == 0))
    problems.add(
        null,
        field,
        ["0, 0"] * len(null),
        "both coordinates are 0 ('null island'): a placeholder for a missing location, not a place",
        "rejected",
    )
    geoms[null] = None
    return geoms


def from_wkt(text: pd.Series, name: str, problems: Problems) -> np.ndarray:
    """Geometries from WKT text; unparseable text is recorded as a reject."""
    values = text.to_numpy(dtype=object, na_value=None)
    geoms = shapely.from_wkt(values, on_invalid="ignore")
    bad = np.flatnonzero(shapely.is_missing(geoms) & pd.notna(values))
    problems.add(bad, name, values[bad], "not valid WKT", "rejected")
    return geoms


def check_geometries(
    geoms: np.ndarray,
    allowed: tuple[str, ...],
    problems: Problems,
    field: str = "geometry",
    path: object | None = None,
) -> np.ndarray:
    """Drop Z, unwrap single-part multi-points, check types and ranges, repair invalid shapes.

    A geometry of the wrong type is one rejected row; given ``path``, a file in which *every*
    geometry is of a wrong type is refused outright: it is the wrong file (or the wrong kind),
    and a thousand identical rejects would hide that.
    """
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
    if path is not None and wrong.size and wrong.size == int(known.sum()):
        found = " or ".join(sorted(set(names[types[wrong]])))
        raise SourceError(
            f"every geometry in it is {found} ({wrong.size} features) and this kind needs "
            f"{' or '.join(allowed)}: is it the right file, or the right kind?",
            path=str(path),
            field=field,
        )
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
