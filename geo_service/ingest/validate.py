"""A source file → its rows in the canonical schema, plus every problem found on the way.

Nothing is silently dropped: a row that cannot be used is *rejected* with the file, line or
feature number, publisher field and what was expected; an optional value that is wrong is
*cleared*; an invalid shape is *repaired* when the repair keeps its shape; a probable mistake
(swapped lon/lat, a point outside its country) is *flagged* and kept as published.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from geo_service.catalog import FieldRule, Reference, SourceEntry
from geo_service.errors import SourceError
from geo_service.ingest import ADAPTERS, ReadOptions, adapter_for
from geo_service.ingest.base import ProgressFn, RawTable
from geo_service.ingest.countries import country_shapes, resolve_countries
from geo_service.ingest.geometry import (
    check_geometries,
    from_wkt,
    points_from_columns,
    reject_unusable_coordinates,
    resolve_crs,
    to_wgs84,
)
from geo_service.ingest.mapping import (
    apply_rule,
    arrow_of,
    as_text,
    check_columns,
    const_text,
    needed_columns,
)
from geo_service.ingest.population import PopulationGrid, read_population
from geo_service.ingest.problems import COLUMNS, Problems, got, shorten
from geo_service.ingest.units import unit_problems
from geo_service.schemas import COMMON_FIELDS, SCHEMAS, SENSITIVITIES, FieldSpec, Kind

_URL = r"^https?://[^\s/$.?#][^\s]*$"


@dataclass
class SourceResult:
    """What one source contributed to a build: its valid rows and its problems."""

    key: str
    kind: Kind
    path: Path
    layer: gpd.GeoDataFrame
    problems: pd.DataFrame
    counts: dict[str, int]
    notes: list[str] = field(default_factory=list)
    #: A population source's grid (its ``layer`` is then empty).
    grid: PopulationGrid | None = None

    @property
    def reject_share(self) -> float:
        """Rejected rows over rows considered (after the catalog's row filter)."""
        considered = self.counts["read"] - self.counts["filtered"]
        return self.counts["rejected"] / considered if considered else 0.0


def read_source(entry: SourceEntry, progress: ProgressFn | None = None) -> RawTable:
    """Read only the columns the entry's mapping needs."""
    check_path(entry)
    adapter = adapter_for(entry.path, entry.adapter)
    opts = ReadOptions(
        path=entry.path,
        layer=entry.layer,
        encoding=entry.encoding,
        delimiter=entry.delimiter,
        lon=entry.mapping.lon,
        lat=entry.mapping.lat,
        wkt=entry.mapping.wkt,
    )
    header = adapter.columns(opts)
    check_columns(entry.mapping, SCHEMAS[entry.kind], header, entry.where, entry.path)
    cols = needed_columns(entry.mapping, SCHEMAS[entry.kind], header, entry.where)
    return adapter.read(opts, cols, progress)


def check_path(entry: SourceEntry) -> None:
    """The entry names a readable, non-empty file: said once, before any adapter tries.

    Without this a folder, a file the user may not read or a 0-byte file reaches GDAL or Arrow,
    whose errors ("not recognized as being in a supported file format") hide what is wrong.
    """
    path = entry.path
    catalog = entry.catalog_path
    where = (
        f' (path = "{os.path.relpath(path, catalog.parent)}" in {catalog})'
        if catalog is not None
        else ""
    )
    if not path.exists():
        raise SourceError(f"file not found{where}", path=path)
    if path.is_dir():
        known = {s for a in ADAPTERS.values() for s in a.suffixes}
        files = sorted(p.name for p in path.iterdir() if p.suffix.lower() in known)
        inside = (
            f"; it holds {', '.join(files[:5])}{' …' if len(files) > 5 else ''}" if files else ""
        )
        raise SourceError(f"is a folder, not a file{where}: name one file{inside}", path=path)
    if not path.is_file():
        raise SourceError(f"is not a regular file{where}", path=path)
    try:
        with path.open("rb") as fh:
            first = fh.read(1)
    except OSError as exc:
        raise SourceError(f"cannot be read ({exc.strerror or exc}){where}", path=path) from exc
    if not first:
        raise SourceError("file is empty (0 bytes)", path=path)


def validate_source(
    entry: SourceEntry,
    reference: Reference | None = None,
    progress: ProgressFn | None = None,
    today: dt.date | None = None,
    validating: ProgressFn | None = None,
) -> SourceResult:
    """Read (``progress``: bytes or features) and validate (``validating``: checks) one entry.

    An entry from a catalog is named in any error (``source <key>: …``), so a build's message
    says which table of ``sources.toml`` to look at. (Not as ``[sources.<key>]``: the CLI prints
    with rich, whose markup would swallow the brackets.)
    """
    try:
        if entry.kind == Kind.population:
            result = _population(entry, progress)
            if validating:
                validating(1, 1)
            return result
        raw = read_source(entry, progress)
        return validate_table(raw, entry, reference, today=today, progress=validating)
    except SourceError as exc:
        named = f"source {entry.key}: "
        if entry.catalog_path is not None and not str(exc).startswith(named):
            exc.args = (named + str(exc),)
        raise


def _population(entry: SourceEntry, progress: ProgressFn | None) -> SourceResult:
    grid, problems, counts = read_population(entry, progress)
    empty = gpd.GeoDataFrame({"source": pd.Series([], dtype="str")}, geometry=[], crs=4326)
    cells = int((grid.people > 0).sum())
    note = f"{entry.key}: {grid.total:,.0f} people in {cells:,} populated cells ({grid.year})"
    return SourceResult(
        entry.key, entry.kind, entry.path, empty, problems, counts, [note], grid=grid
    )


def validate_table(
    raw: RawTable,
    entry: SourceEntry,
    reference: Reference | None = None,
    today: dt.date | None = None,
    progress: ProgressFn | None = None,
) -> SourceResult:
    """Map and validate a table that an adapter read.

    ``progress`` is told (checks done, checks in all): the geometry, each field, the
    country outlines and the duplicate ids.
    """
    schema = SCHEMAS[entry.kind]
    steps = len(schema.fields) + 3
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, steps)

    n_read = len(raw)
    data, records, geometry = raw.data, raw.records, raw.geometry
    if n_read == 0 and not raw.skipped:
        # A source with nothing in it would silently drop a whole dataset from the build.
        raise SourceError(
            "has a header line but no data rows"
            if raw.record_word == "line"
            else "holds no features",
            path=raw.path,
        )

    keep = np.ones(n_read, dtype=bool)
    for column, allowed in entry.where.items():
        keep &= as_text(data[column]).isin([str(a) for a in allowed]).to_numpy()
    n_filtered = int((~keep).sum())
    if n_read and n_filtered == n_read:
        rule = "; ".join(f"{c} in {', '.join(map(str, v))}" for c, v in entry.where.items())
        raise SourceError(
            f"none of its {n_read} rows passes the catalog's where filter ({rule}): "
            "check the column's values",
            path=raw.path,
        )
    if n_filtered:
        data = data.loc[keep].reset_index(drop=True)
        records = records[keep]
        geometry = geometry[keep] if geometry is not None else None

    problems = Problems()
    geoms = _geometries(raw, data, geometry, entry, problems)
    step()

    out: dict[str, pd.Series] = {}
    for spec in schema.fields:
        step()
        if spec.name == schema.id_field or spec.name == "footprint":
            continue
        rule = _rule_for(entry, spec.name, data)
        if rule is None:
            if spec.required:
                raise SourceError(
                    f"has no column for the required field '{spec.name}' and the mapping names "
                    f"none; its columns are {', '.join(map(str, raw.data.columns))}",
                    path=raw.path,
                    field=spec.name,
                )
            out[spec.name] = _empty(spec, len(data))
            continue
        values = apply_rule(rule, data)
        out[spec.name] = _convert(values, spec, rule, problems, today or dt.date.today())

    source_id = _source_id(entry, data, records, problems)
    id_rule = entry.mapping.rules.get(schema.id_field)
    if id_rule is not None:
        ids = as_text(apply_rule(id_rule, data))
        missing = np.flatnonzero(ids.isna().to_numpy())
        problems.add(
            missing,
            id_rule.label(),
            None,
            f"missing {schema.id_field}",
            "rejected",
            schema.id_field,
        )
    else:
        ids = (entry.key + ":" + source_id.fillna("")).where(source_id.notna(), None)
    out = {schema.id_field: ids, **out}

    if entry.kind == Kind.concessions:
        _footprints(geoms, out, problems)

    sensitivity = _sensitivity(entry, data, problems)
    flags = _country_flags(geoms, out["country"], reference, problems)
    step()

    rejected = problems.rows("rejected")
    alive = np.ones(len(data), dtype=bool)
    alive[rejected] = False
    _duplicates(out[schema.id_field], alive, records, raw, schema.id_field, id_rule, problems)
    step()
    rejected = problems.rows("rejected")
    alive[rejected] = False
    if entry.kind == Kind.units:
        unit_problems(geoms, out["code"], out["level"], alive, entry.tolerance_km2, problems)

    columns = {
        name: out[name]
        for name in [
            schema.id_field,
            *[f.name for f in schema.fields if f.name in out and f.name != schema.id_field],
        ]
    }
    columns["source"] = const_text(entry.key, len(data))
    columns["source_id"] = source_id
    columns["sensitivity"] = sensitivity
    columns["qa_flags"] = flags
    for col in entry.mapping.keep:
        columns[col] = as_text(data[col])
    frame = pd.DataFrame({k: pd.Series(v).reset_index(drop=True) for k, v in columns.items()})
    if not alive.all():
        frame = frame.loc[alive].reset_index(drop=True)
        geoms = geoms[alive]
    layer = gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs="EPSG:4326"), crs="EPSG:4326")
    layer = _tidy_types(layer, entry.kind)

    table = _problem_table(problems, raw, records, entry.key)
    counts = {
        "read": n_read + len(raw.skipped),
        "filtered": n_filtered,
        "rejected": int((~alive).sum()) + len(raw.skipped),
        "kept": int(alive.sum()),
        "cleared": int((table["action"] == "cleared").sum()),
        "repaired": int((table["action"] == "repaired").sum()),
        "flagged": int((table["action"] == "flagged").sum()),
    }
    return SourceResult(entry.key, entry.kind, raw.path, layer, table, counts, list(raw.notes))


def _geometries(
    raw: RawTable,
    data: pd.DataFrame,
    geometry: np.ndarray | None,
    entry: SourceEntry,
    problems: Problems,
) -> np.ndarray:
    """Geometries in EPSG:4326, checked: from lon/lat columns, WKT, or the file's own."""
    crs = resolve_crs(raw.crs, entry.crs, raw.path)
    if raw.lonlat is not None:
        lon_name, lat_name = raw.lonlat
        lon, lon_text = _coordinates(data[lon_name], lon_name, problems)
        lat, lat_text = _coordinates(data[lat_name], lat_name, problems)
        given = (data[lon_name].notna().to_numpy(), data[lat_name].notna().to_numpy())
        geoms = points_from_columns(
            lon, lat, raw.lonlat, crs, problems, given, unparsed=(lon_text, lat_text)
        )
        label = f"{lon_name}/{lat_name}"
    elif raw.wkt is not None:
        geoms = from_wkt(as_text(data[raw.wkt]), raw.wkt, problems)
        label = raw.wkt
    else:
        geoms = geometry if geometry is not None else np.full(len(data), None, dtype=object)
        label = "geometry"
    geoms = reject_unusable_coordinates(geoms, problems, label)
    geoms = to_wgs84(geoms, crs, problems, label)
    return check_geometries(
        geoms, SCHEMAS[entry.kind].geometry_types, problems, label, path=raw.path
    )


def _coordinates(values: pd.Series, name: str, problems: Problems) -> tuple[pd.Series, np.ndarray]:
    """A coordinate column as numbers, and which rows held text that is not a number at all
    (reported here), so NaN from ``nan`` is told apart from NaN from ``north``."""
    found = Problems()
    numbers = _numbers(values, name, "", found, "rejected")
    problems.chunks.extend(found.chunks)
    unparsed = np.zeros(len(values), dtype=bool)
    unparsed[found.rows("rejected")] = True
    return numbers, unparsed


def _rule_for(entry: SourceEntry, name: str, data: pd.DataFrame) -> FieldRule | None:
    rule = entry.mapping.rules.get(name)
    if rule is None and name in data.columns:
        rule = FieldRule(field=name)
    return rule


def _numbers(
    values: pd.Series,
    label: str,
    target: str,
    problems: Problems,
    action: str,
    trimmed: bool = False,
) -> pd.Series:
    """Floats; text that is not a number is recorded (missing values are not, here).

    ``trimmed`` says the values already went through :func:`as_text`.
    """
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        return values.astype("float64")
    text = values if trimmed else as_text(values)
    try:
        # Arrow parses a clean column in one pass; only a column with a bad value takes the
        # slower road that finds which values are bad.
        parsed = pc.cast(arrow_of(text), pa.float64())
        return pd.Series(parsed.to_numpy(zero_copy_only=False), index=text.index, dtype="float64")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        pass
    nums = pd.to_numeric(text, errors="coerce").astype("float64")
    bad = np.flatnonzero((text.notna() & nums.isna()).to_numpy())
    problems.add(
        bad, label, text.iloc[bad], got(text.iloc[bad]).radd("expected a number, "), action, target
    )
    return nums


def _convert(
    values: pd.Series, spec: FieldSpec, rule: FieldRule, problems: Problems, today: dt.date
) -> pd.Series:
    """Typed values of one field; wrong values are rejected (required) or cleared (optional)."""
    label = rule.label()
    action = "rejected" if spec.required else "cleared"
    text = as_text(values) if spec.type not in ("int", "float", "date") else None

    def report(mask: np.ndarray, shown: pd.Series, reason: str, quote: bool = True) -> None:
        # Messages are made for the offending rows only: a clean million rows costs nothing here.
        idx = np.flatnonzero(mask)
        if idx.size:
            values = shown.iloc[idx]
            text = got(values).radd(reason + ", ") if quote else reason
            problems.add(idx, label, values, text, action, spec.name)

    if spec.type in ("int", "float"):
        shown = as_text(values)
        typed = pd.api.types.is_numeric_dtype(values.dtype)
        nums = _numbers(
            values if typed else shown, label, spec.name, Problems(), action, trimmed=True
        )
        if rule.scale is not None:
            nums = nums * rule.scale
        not_number = shown.notna() & nums.isna()
        report(not_number.to_numpy(), shown, f"expected {spec.expectation()}")
        bad = np.zeros(len(nums), dtype=bool)
        arr = nums.to_numpy()
        with np.errstate(invalid="ignore"):
            if spec.type == "int":
                bad |= np.isfinite(arr) & (np.mod(arr, 1) != 0)
            if spec.min is not None:
                bad |= (arr <= spec.min) if spec.min_exclusive else (arr < spec.min)
            if spec.max is not None:
                bad |= arr > spec.max
        report(bad, shown, f"expected {spec.expectation()}")
        nums = nums.where(~bad & ~not_number.to_numpy())
        missing = nums.isna().to_numpy() & ~bad & ~not_number.to_numpy()
        if spec.required:
            report(missing, shown, f"missing {spec.name}", quote=False)
        if spec.type == "int":
            return nums.round().astype("Int64")
        return nums

    if spec.type == "date":
        shown = as_text(values)
        typed = pd.api.types.is_datetime64_any_dtype(values.dtype)
        dates = _dates(values if typed else shown, rule.format)
        unparsed = (shown.notna() & dates.isna()).to_numpy()
        fmt = f" in the format {rule.format}" if rule.format else ""
        report(unparsed, shown, f"expected {spec.expectation()}{fmt}")
        bad = np.zeros(len(dates), dtype=bool)
        if spec.not_future:
            bad = (dates > pd.Timestamp(today)).to_numpy()
            report(bad, shown, "date is in the future")
        dates = dates.where(~bad)
        if spec.required:
            report(
                dates.isna().to_numpy() & ~unparsed & ~bad,
                shown,
                f"missing {spec.name}",
                quote=False,
            )
        return dates

    assert text is not None
    if spec.type == "country":
        codes = resolve_countries(text)
        bad = (text.notna() & codes.isna()).to_numpy()
        report(bad, text, f"expected {spec.expectation()}")
        out = codes
    elif spec.type == "enum":
        lowered = text.str.lower()
        bad = (lowered.notna() & ~lowered.isin(spec.choices)).to_numpy()
        report(bad, text, f"expected {spec.expectation()}")
        out = lowered.where(~bad, None)
    elif spec.type == "url":
        bad = (text.notna() & ~text.str.match(_URL).fillna(False).astype(bool)).to_numpy()
        report(bad, text, f"expected {spec.expectation()}")
        out = text.where(~bad, None)
    else:
        out = text
        bad = np.zeros(len(text), dtype=bool)
    if spec.required:
        report(out.isna().to_numpy() & ~bad, text, f"missing {spec.name}", quote=False)
    return out


def _empty(spec: FieldSpec, n: int) -> pd.Series:
    """An all-missing column of the field's type, so every build has the same schema."""
    dtype = {"int": "Int64", "float": "float64", "date": "datetime64[ms]"}.get(spec.type, "object")
    return (
        pd.Series([None] * n, dtype=dtype)
        if dtype != "object"
        else pd.Series([None] * n, dtype="object")
    )


def _dates(values: pd.Series, fmt: str | None) -> pd.Series:
    """Dates at day resolution, UTC-naive; values that do not parse become NaT.

    Text must already have gone through :func:`as_text`. Plain ISO 8601 takes Arrow's parser
    (one pass); a column with a bad value, a time zone or a publisher format takes pandas'.
    """
    parsed = None
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        parsed = values
    elif fmt is None:
        try:
            stamps = pc.cast(arrow_of(values), pa.timestamp("ms"))
            parsed = pd.Series(stamps.to_pandas(), index=values.index)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            parsed = None
    if parsed is None:
        parsed = pd.to_datetime(values, format=fmt or "ISO8601", errors="coerce", utc=True)
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed.dt.floor("D").astype("datetime64[ms]")


def _source_id(
    entry: SourceEntry, data: pd.DataFrame, records: np.ndarray, problems: Problems
) -> pd.Series:
    rule = entry.mapping.rules.get("source_id")
    if rule is None and "source_id" in data.columns:
        rule = FieldRule(field="source_id")
    if rule is None:
        # No publisher id: the record number stands in (stable only while the file is unchanged).
        return pd.Series(records.astype(str), dtype="str")
    ids = as_text(apply_rule(rule, data))
    problems.add(
        np.flatnonzero(ids.isna().to_numpy()),
        rule.label(),
        None,
        "missing source_id",
        "rejected",
        "source_id",
    )
    return ids


def _sensitivity(entry: SourceEntry, data: pd.DataFrame, problems: Problems) -> pd.Series:
    rule = entry.mapping.rules.get("sensitivity")
    if rule is None:
        return const_text(entry.sensitivity, len(data))
    text = as_text(apply_rule(rule, data)).str.lower().fillna(entry.sensitivity)
    bad = np.flatnonzero(~text.isin(SENSITIVITIES).to_numpy())
    # An unknown sensitivity is never guessed to be public: the row is refused.
    problems.add(
        bad,
        rule.label(),
        text.iloc[bad],
        got(text.iloc[bad]).radd("expected public or restricted, "),
        "rejected",
        "sensitivity",
    )
    return text


def _footprints(geoms: np.ndarray, out: dict[str, pd.Series], problems: Problems) -> None:
    types = np.asarray(shapely.get_type_id(geoms))
    is_point = types == 0
    footprint = np.where(is_point, "site", np.where(types >= 0, "polygon", None))
    radius = out["footprint_radius_m"].to_numpy(dtype="float64", na_value=np.nan)
    need = np.flatnonzero(is_point & np.isnan(radius))
    problems.add(
        need,
        "footprint_radius_m",
        None,
        "a site point stands for a footprint: give footprint_radius_m in the mapping",
        "rejected",
        "footprint_radius_m",
    )
    out["footprint"] = pd.Series(footprint, dtype="object")
    out["footprint_radius_m"] = pd.Series(np.where(is_point, radius, np.nan))


def _country_flags(
    geoms: np.ndarray, countries: pd.Series, reference: Reference | None, problems: Problems
) -> pd.Series:
    flags = np.full(len(geoms), None, dtype=object)
    if reference is None or not reference.countries:
        return pd.Series(flags, dtype="object")
    shapes = country_shapes(
        tuple(reference.countries), reference.country_field, reference.outside_country_tolerance_km
    )
    is_point = np.asarray(shapely.get_type_id(geoms)) == 0
    codes, uniques = pd.factorize(countries)
    x = shapely.get_x(geoms)  # NaN for anything but a point
    y = shapely.get_y(geoms)
    tol = reference.outside_country_tolerance_km
    for number, code in enumerate(uniques):
        if code not in shapes:
            continue
        idx = np.flatnonzero(is_point & (codes == number))
        outside = idx[~shapes.inside(code, x[idx], y[idx])]
        if outside.size == 0:
            continue
        swapped = shapes.inside(code, y[outside], x[outside])
        where = [f"{xx:.5f}, {yy:.5f}" for xx, yy in zip(x[outside], y[outside], strict=True)]
        sw = outside[swapped]
        problems.add(
            sw,
            "geometry",
            np.asarray(where, dtype=object)[swapped],
            f"longitude and latitude look swapped: swapped, the point lies in {code}; "
            "as published it does not",
            "flagged",
        )
        flags[sw] = "probable_lonlat_swap"
        far = outside[~swapped]
        problems.add(
            far,
            "geometry",
            np.asarray(where, dtype=object)[~swapped],
            f"lies more than {tol:g} km outside its declared country {code}",
            "flagged",
        )
        flags[far] = "outside_declared_country"
    return pd.Series(flags, dtype="object")


def _duplicates(
    ids: pd.Series,
    alive: np.ndarray,
    records: np.ndarray,
    raw: RawTable,
    id_field: str,
    id_rule: FieldRule | None,
    problems: Problems,
) -> None:
    present = ids.notna().to_numpy()
    arr = arrow_of(ids)
    if pc.count_distinct(arr).as_py() == int(present.sum()):
        return  # the usual case: one hash pass and no id is repeated
    values = ids.to_numpy(dtype=object)
    live = np.flatnonzero(alive & present)
    dup_mask = pd.Series(values[live]).duplicated(keep="first").to_numpy()
    if not dup_mask.any():
        return
    dups = live[dup_mask]
    first_pos = pd.Series(live, index=values[live]).groupby(level=0).first()
    firsts = first_pos.loc[values[dups]].to_numpy()
    where = raw.positions(records[firsts])
    reasons = pd.Series(
        [
            f"duplicate id '{v}' (first on {raw.record_word} {p})"
            for v, p in zip(values[dups], where, strict=True)
        ]
    )
    label = id_rule.label() if id_rule is not None else "source_id"
    problems.add(dups, label, values[dups], reasons, "rejected", id_field)


def _tidy_types(layer: gpd.GeoDataFrame, kind: Kind) -> gpd.GeoDataFrame:
    """Text columns as pandas' text type (missing stays missing), whatever the source format."""
    text = [s.name for s in SCHEMAS[kind].fields if s.type in ("str", "country", "enum", "url")]
    for col in [*text, *COMMON_FIELDS]:
        if col in layer and layer[col].dtype != "str":
            layer[col] = layer[col].where(layer[col].notna(), None).astype("str")
    return layer


def _problem_table(
    problems: Problems, raw: RawTable, records: np.ndarray, key: str
) -> pd.DataFrame:
    frame = problems.frame()
    skipped = _skipped_table(raw, key)
    if frame.empty:
        if len(skipped):
            return skipped
        return pd.DataFrame({c: pd.Series([], dtype="str") for c in COLUMNS}).astype(
            {"record": "int64", "position": "int64"}
        )
    recs = records[frame["index"].to_numpy()]
    pos = raw.positions(recs)
    target = frame["target"].fillna("")
    arrow = np.where((target != "") & (target != frame["field"]), " → " + target, "")
    message = (
        raw.path.name
        + ", "
        + raw.record_word
        + " "
        + pd.Series(pos).astype(str)
        + ", field '"
        + frame["field"]
        + "'"
        + arrow
        + ": "
        + frame["reason"]
    )
    table = pd.DataFrame(
        {
            "source": key,
            "file": raw.path.name,
            "record": recs,
            "position": pos,
            "field": frame["field"],
            "target": target,
            "value": frame["value"],
            "reason": frame["reason"],
            "action": frame["action"],
            "message": message,
        }
    )[COLUMNS]
    if len(skipped):
        # In file order; a skipped record whose line is unknown goes last.
        table = pd.concat([table, skipped], ignore_index=True)
        order = np.where(table["position"] < 0, np.iinfo(np.int64).max, table["position"])
        table = table.iloc[np.argsort(order, kind="stable")].reset_index(drop=True)
    return table


def _skipped_table(raw: RawTable, key: str) -> pd.DataFrame:
    """Records the adapter could not make into rows, as rejects of the whole row."""
    rows = [
        {
            "source": key,
            "file": raw.path.name,
            "record": s.record,
            "position": s.position,
            "field": "",
            "target": "",
            "value": shorten(s.text, 80),
            "reason": s.reason + "; row skipped",
            "action": "rejected",
            "message": f"{raw.path.name}, "
            + (f"{raw.record_word} {s.position}" if s.position >= 0 else "a row")
            + f": {s.reason}; row skipped",
        }
        for s in raw.skipped
    ]
    return pd.DataFrame(rows, columns=COLUMNS).astype({"record": "int64", "position": "int64"})
