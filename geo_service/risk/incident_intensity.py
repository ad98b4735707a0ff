"""Incident intensity: recent, nearby, deadly violence counts most.

For each community, the sum over incidents of a severity weight, a Gaussian kernel of the
distance and an exponential decay with age:

    raw = Σ_i w_i · exp(−d_i² / (2 h_i²)) · 2^(−Δt_i / T½)
    w_i = type_weight(type_i) · (1 + α · ln(1 + fatalities_i))

The bandwidth ``h_i`` follows the incident's location precision: an event placed at a village
is smoothed over a couple of kilometres, one placed only at a district centroid over tens of
kilometres, and events located only to a province, region or country are left out, because
smoothing them at village scale would put violence where nobody recorded it. Distances are in
metres (``metric.pairs_within``), ages in whole days before a reference date that is a build
parameter, so the same inputs always give the same values.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, NamedTuple

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import shapely
from pydantic import Field, field_validator
from scipy.spatial import cKDTree

from geo_service.risk.base import (
    Box,
    FactorParams,
    FactorResult,
    Prepared,
    RiskInputs,
    compute_all,
    no_evidence,
    precision_of,
    top_ids,
)
from geo_service.risk.boxes import near, only, subset
from geo_service.risk.kernel_grid import gaussian_sums
from geo_service.risk.metric import EARTH_RADIUS_M, pairs_within, zone_slices
from geo_service.schemas import LOCATION_PRECISIONS, Kind, is_failure

FORMULA = (
    "raw = Σ_i w_i · exp(−d_i² / (2 h_i²)) · 2^(−Δt_i / T½) over incidents with d_i ≤ c · h_i "
    "and date_i ≤ reference_date; w_i = type_weight(type_i) · (1 + α · ln(1 + fatalities_i)) "
    "(missing fatalities = 0); h_i = bandwidth_km[location_precision_i]; "
    "normalised = 1 − exp(−raw / κ)"
)

#: Why an incident was left out, in the order the reasons are tested (each is counted once,
#: under the first that applies). A tailings or dam failure is evidence of the tailings factor
#: (``tailings_exposure``), not of violence.
EXCLUSION_REASONS = (
    "no_location",
    "no_date",
    "tailings_failure",
    "low_precision",
    "after_reference_date",
)

#: Candidate pairs measured at once: bounds memory (about 100 bytes a pair inside
#: ``pairs_within``) however dense communities and incidents are. Results do not depend on it.
PAIR_BUDGET = 4_000_000


class IncidentIntensityParams(FactorParams):
    """Parameters of the incident-intensity factor (section ``[incident_intensity]``)."""

    weight: float = Field(1.0, ge=0.0, description="Weight of this factor in the combined score.")
    half_life_days: float = Field(
        365.0,
        gt=0.0,
        description="Age in days at which an incident counts half as much as one on the "
        "reference date: violence a year ago still signals risk, a decade ago much less.",
    )
    bandwidth_km: dict[str, float] = Field(
        default_factory=lambda: {"exact": 2.0, "near": 10.0, "admin2": 25.0},
        description="Gaussian bandwidth per location precision, about the size of the place "
        "an event is known to: a village (exact), its surroundings (near), a district "
        "(admin2). Precisions not listed (admin1, region, country, international, missing) "
        "are excluded and counted in the metadata.",
    )
    cutoff_bandwidths: float = Field(
        3.0,
        gt=0.0,
        description="Incidents farther than this many bandwidths are not paired: at 3 the "
        "kernel is exp(−4.5) ≈ 1.1 %, so the cut loses little and bounds the work.",
    )
    type_weights: dict[str, float] = Field(
        default_factory=lambda: {"one-sided": 1.5, "state-based": 1.0, "non-state": 1.0},
        description="Severity multiplier per incident type: one-sided violence is targeted "
        "at civilians, the people a community risk map is about.",
    )
    unknown_type_weight: float = Field(
        1.0, ge=0.0, description="Multiplier for a missing type or one not in type_weights."
    )
    fatality_weight: float = Field(
        0.5,
        ge=0.0,
        description="α in w = type_weight · (1 + α · ln(1 + fatalities)): deadlier events "
        "count more, on a log scale so that one massacre does not drown every other signal "
        "(at 0.5, 800 deaths weigh 4.3 times an event without deaths).",
    )
    reference_date: dt.date | None = Field(
        None,
        description="Day ages are measured from; None means the date of the newest incident. "
        "Incidents after it are ignored and counted.",
    )
    saturation: float = Field(
        1.0,
        gt=0.0,
        description="κ in normalised = 1 − exp(−raw / κ): the raw value that maps to "
        "1 − 1/e ≈ 0.63. At 1.0, one incident of weight 1 (no deaths, type weight 1) at the "
        "door on the reference date gives ≈ 0.6; several such incidents approach 1.",
    )

    method: Literal["auto", "exact", "grid"] = Field(
        "auto",
        description="How the sum is evaluated: 'exact' term by term over every (community, "
        "incident) pair in reach; 'grid' through a grid of bandwidth/grid_cells_per_bandwidth "
        "cells (``kernel_grid``: within 0.6 % of an incident's weight, time linear in the "
        "data); 'auto' is exact up to exact_pair_limit pairs, the grid above.",
    )
    exact_pair_limit: int = Field(
        20_000_000,
        ge=0,
        description="Pairs in reach above which 'auto' takes the grid: pairs grow with the "
        "square of the density, and 20 million take about 15 s on one core. A partition of "
        "the communities (``partition.py``) takes its share, the limit times its part of the "
        "communities, so the exact sums of all partitions never hold more pairs than this.",
    )
    grid_cells_per_bandwidth: int = Field(
        6, ge=2, le=16, description="Grid cells per bandwidth for the 'grid' method."
    )

    @field_validator("bandwidth_km")
    @classmethod
    def _known_precisions(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(v) - set(LOCATION_PRECISIONS))
        if unknown:
            raise ValueError(
                f"unknown location precision(s) {', '.join(unknown)}; "
                f"use {', '.join(LOCATION_PRECISIONS)}"
            )
        if any(not (h > 0 and math.isfinite(h)) for h in v.values()):
            raise ValueError("bandwidths must be positive numbers of kilometres")
        return v


class IncidentWeights(NamedTuple):
    """Per incident: severity × age decay, bandwidth in metres, and whether it is used."""

    weights: np.ndarray
    bandwidth_m: np.ndarray
    keep: np.ndarray


def kernel(metres: np.ndarray, bandwidth_m: np.ndarray) -> np.ndarray:
    """Gaussian kernel with peak 1 at distance 0.

    Unnormalised on purpose: an incident at the door contributes its full weight whatever its
    precision, so values are comparable across precisions and read as "weighted incidents
    nearby", where a normalised density would give exact events a 150-fold larger peak than
    district-level ones and would be in units of km⁻².
    """
    z = np.asarray(metres, dtype="float64") / np.asarray(bandwidth_m, dtype="float64")
    return np.exp(-0.5 * z * z)


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    """A column, or all-missing when a source did not provide it."""
    if name in frame.columns:
        return frame[name]
    return pd.Series(pd.NA, index=frame.index, dtype="object")


def _incidents(inputs: RiskInputs) -> gpd.GeoDataFrame:
    """The incidents of ``inputs`` (an empty layer when there are none)."""
    if inputs.incidents is None:
        return gpd.GeoDataFrame(geometry=[], crs="EPSG:4326")
    return inputs.incidents


def _days(incidents: pd.DataFrame) -> np.ndarray:
    """Incident dates as whole days (time of day dropped; NaT stays NaT)."""
    return pd.to_datetime(_column(incidents, "date")).to_numpy().astype("datetime64[D]")


def resolve_reference_date(
    incidents: pd.DataFrame | None, params: IncidentIntensityParams
) -> dt.date | None:
    """The configured reference date, else the newest incident's date (None if no dates)."""
    if params.reference_date is not None:
        return params.reference_date
    if incidents is None or len(incidents) == 0:
        return None
    days = _days(incidents)[~_failures(incidents)]
    days = days[~np.isnat(days)]
    return days.max().astype(dt.date) if days.size else None


def _failures(incidents: pd.DataFrame) -> np.ndarray:
    """Incidents whose type is a tailings or dam failure."""
    return is_failure(_column(incidents, "type"))


def exclusions(
    incidents: pd.DataFrame, params: IncidentIntensityParams, reference_date: dt.date
) -> dict[str, np.ndarray]:
    """Per reason in ``EXCLUSION_REASONS``, which incidents it leaves out (disjoint masks)."""
    geoms = (
        incidents.geometry.to_numpy()
        if isinstance(incidents, gpd.GeoDataFrame)
        else np.full(len(incidents), None, dtype=object)
    )
    days = _days(incidents)
    precision = _column(incidents, "location_precision")
    masks = {
        "no_location": shapely.is_missing(geoms) | shapely.is_empty(geoms),
        "no_date": np.isnat(days),
        "tailings_failure": _failures(incidents),
        "low_precision": ~precision.isin(sorted(params.bandwidth_km)).to_numpy(),
        "after_reference_date": days > np.datetime64(reference_date, "D"),
    }
    taken = np.zeros(len(incidents), dtype=bool)
    for reason in EXCLUSION_REASONS:
        masks[reason] = masks[reason] & ~taken
        taken |= masks[reason]
    return masks


def incident_weights(
    incidents: pd.DataFrame, params: IncidentIntensityParams, reference_date: dt.date
) -> IncidentWeights:
    """Each incident's weight w_i · 2^(−Δt_i / T½), bandwidth h_i in metres, and keep mask.

    The one place the per-incident part of the formula lives, so that community values and a
    raster surface (Σ weights · ``kernel``(d, bandwidth)) cannot drift apart. Excluded incidents
    have weight 0 and bandwidth NaN.
    """
    masks = exclusions(incidents, params, reference_date)
    keep = ~np.stack(list(masks.values())).any(axis=0)
    type_w = (
        _column(incidents, "type")
        .map(params.type_weights)
        .astype("float64")
        .fillna(params.unknown_type_weight)
        .to_numpy()
    )
    fatalities = (
        pd.to_numeric(_column(incidents, "fatalities"), errors="coerce")
        .astype("float64")
        .fillna(0.0)
        .clip(lower=0.0)
        .to_numpy()
    )
    severity = type_w * (1.0 + params.fatality_weight * np.log1p(fatalities))
    age_days = (np.datetime64(reference_date, "D") - _days(incidents)).astype("float64")
    decay = np.exp2(-np.where(keep, age_days, 0.0) / params.half_life_days)
    weights = np.where(keep, severity * decay, 0.0)
    bandwidth = (
        _column(incidents, "location_precision")
        .map(params.bandwidth_km)
        .astype("float64")
        .to_numpy()
        * 1000.0
    )
    bandwidth_m = np.where(keep, bandwidth, np.nan)
    return IncidentWeights(weights, bandwidth_m, keep)


def _latest(source: np.ndarray, days: np.ndarray, n: int) -> np.ndarray:
    """Per source row, the latest of its pairs' dates (NaT, the smallest value, when none)."""
    out = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]").view("int64")
    np.maximum.at(out, source, days.astype("datetime64[D]").view("int64"))
    return out.view("datetime64[D]")


def _bandwidth_classes(w: IncidentWeights) -> list[tuple[float, np.ndarray]]:
    """Kept incidents grouped by bandwidth, so each search reaches only as far as it must."""
    kept = np.flatnonzero(w.keep)
    h = w.bandwidth_m[kept]
    return [(float(b), kept[h == b]) for b in np.unique(h)]


def _grid_key(lon: np.ndarray, lat: np.ndarray, dlon: float, dlat: float) -> np.ndarray:
    ix = np.floor(lon / dlon).astype(np.int64) + (1 << 30)
    iy = np.floor(lat / dlat).astype(np.int64) + (1 << 30)
    return (ix << 31) | iy


def _groups(
    lon: np.ndarray, lat: np.ndarray, targets: list[tuple[np.ndarray, np.ndarray, float]]
) -> list[np.ndarray]:
    """Positions of the points in spatially compact groups of about ``PAIR_BUDGET`` pairs.

    Pairs are what costs memory, and a town among dense incidents has thousands where a
    village elsewhere has none, so groups are cut on an estimate of pairs, not on a count of
    communities. The estimate counts, per target class, the targets in the 3 × 3 block of grid
    cells (each at least as wide as the class's reach) around each point: an upper bound on its
    pairs, about 3 times too high. Degrees serve only this sizing; every distance that enters a
    value is measured in metres by ``pairs_within``.
    """
    n = len(lon)
    ok = ~np.isnan(lon)
    estimate = np.zeros(n)
    cell = np.zeros(n, dtype=np.int64)
    for t_lon, t_lat, reach in sorted(targets, key=lambda t: t[2]):
        if not ok.any() or t_lon.size == 0:
            continue
        dlat = np.degrees(reach / EARTH_RADIUS_M) * 1.01
        top = min(max(np.abs(lat[ok]).max(), np.abs(t_lat).max()) + dlat, 89.0)
        dlon = dlat / max(np.cos(np.radians(top)), 0.01)
        keys, counts = np.unique(_grid_key(t_lon, t_lat, dlon, dlat), return_counts=True)
        own = _grid_key(np.nan_to_num(lon), np.nan_to_num(lat), dlon, dlat)
        cell = own  # the last, coarsest grid orders the communities into compact groups
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                k = own + (dx << 31) + dy
                pos = np.minimum(np.searchsorted(keys, k), keys.size - 1)
                estimate += np.where(keys[pos] == k, counts[pos], 0)
    order = np.lexsort((lat, lon, cell))
    cum = np.cumsum(estimate[order])
    cuts = np.searchsorted(cum, np.arange(PAIR_BUDGET, cum[-1] if n else 0, PAIR_BUDGET))
    return [c for c in np.split(order, np.unique(cuts)) if c.size]


@dataclass
class _Sums:
    """Per covered community: the factor's sums, and its evidence group by group."""

    raw: np.ndarray
    deaths: np.ndarray
    latest: np.ndarray
    groups: list[np.ndarray] = field(default_factory=list)
    evidence: list[pa.ListArray] = field(default_factory=list)

    def evidence_for(self, rows: np.ndarray, n: int) -> pa.ListArray:
        """The groups' evidence in community order: ``rows`` are the covered communities."""
        done = sum(len(e) for e in self.evidence)
        position = np.full(n, done, dtype=np.int64)  # the item after them: an empty list
        if self.groups:
            position[rows[np.concatenate(self.groups)]] = np.arange(done)
        return pa.concat_arrays([*self.evidence, no_evidence(1)]).take(pa.array(position))


def _sums(
    points: np.ndarray,
    incidents: gpd.GeoDataFrame,
    w: IncidentWeights,
    params: IncidentIntensityParams,
    k: int,
) -> _Sums:
    """Evaluate the formula at ``points``, in groups of bounded size (see ``_groups``)."""
    m = len(points)
    out = _Sums(np.zeros(m), np.zeros(m), np.full(m, np.datetime64("NaT"), "datetime64[D]"))
    geoms = incidents.geometry.to_numpy()
    deaths = (
        pd.to_numeric(_column(incidents, "fatalities"), errors="coerce")
        .astype("float64")
        .fillna(0.0)
        .to_numpy()
    )
    days = _days(incidents)
    ids = _column(incidents, "incident_id").astype(str).to_numpy()
    classes = _bandwidth_classes(w)
    if not classes:  # every incident excluded: zeros, as for no incidents
        return out
    reach = [
        (shapely.get_x(geoms[idx]), shapely.get_y(geoms[idx]), params.cutoff_bandwidths * h)
        for h, idx in classes
    ]
    for group in _groups(shapely.get_x(points), shapely.get_y(points), reach):
        parts = []
        for h, idx in classes:  # one search per bandwidth, each only as far as it must reach
            pairs = pairs_within(points[group], geoms[idx], params.cutoff_bandwidths * h)
            target = idx[pairs.target]
            parts.append((pairs.source, target, w.weights[target] * kernel(pairs.metres, h)))
        source, target, contribution = (np.concatenate(p) for p in zip(*parts, strict=True))
        live = contribution > 0
        source, target, contribution = source[live], target[live], contribution[live]
        size = len(group)
        out.raw[group] = np.bincount(source, contribution, minlength=size)
        out.deaths[group] = np.bincount(source, deaths[target], minlength=size)
        out.latest[group] = _latest(source, days[target], size)
        out.groups.append(group)
        out.evidence.append(top_ids(source, ids[target], contribution, size, k=k))
    return out


@dataclass(frozen=True)
class _Zone:
    """One UTM zone's communities in metres, and per bandwidth its incidents' tree."""

    rows: np.ndarray
    xy: np.ndarray
    classes: list[tuple[float, np.ndarray, cKDTree]]


def _zones(
    points: np.ndarray,
    incidents: gpd.GeoDataFrame,
    w: IncidentWeights,
    params: IncidentIntensityParams,
) -> list[_Zone]:
    """Communities by UTM zone, each with a k-d tree per bandwidth of the incidents in reach.

    Only incidents of positive weight enter: a zero contribution is no evidence and not "in
    reach", as in the exact path.
    """
    geoms = incidents.geometry.to_numpy()
    live = np.flatnonzero(w.keep & (w.weights > 0))
    if live.size == 0 or len(points) == 0:
        return []
    lon, lat = shapely.get_x(geoms[live]), shapely.get_y(geoms[live])
    reach = params.cutoff_bandwidths * float(np.nanmax(w.bandwidth_m[live]))
    px, py = shapely.get_x(points), shapely.get_y(points)
    zones = []
    for zs in zone_slices(px, py, np.column_stack([lon, lat, lon, lat]), reach):
        classes = []
        near = live[zs.targets]
        for h in np.unique(w.bandwidth_m[near]):
            idx = near[w.bandwidth_m[near] == h]
            xy = zs.metres(shapely.get_x(geoms[idx]), shapely.get_y(geoms[idx]))
            classes.append((float(h), idx, cKDTree(xy)))
        zones.append(_Zone(zs.points, zs.metres(px[zs.points], py[zs.points]), classes))
    return zones


def _reach_counts(zones: list[_Zone], n: int, cutoff: float) -> np.ndarray:
    """Incidents within cutoff · bandwidth of each community, without listing the pairs."""
    count = np.zeros(n)
    for z in zones:
        for h, _, tree in z.classes:
            count[z.rows] += tree.query_ball_point(z.xy, cutoff * h, return_length=True, workers=-1)
    return count


def _grid_raw(
    zones: list[_Zone], w: IncidentWeights, n: int, params: IncidentIntensityParams
) -> np.ndarray:
    """The intensity sum at each community through ``kernel_grid`` (time linear in the data)."""
    raw = np.zeros(n)
    for z in zones:
        for h, idx, tree in z.classes:
            raw[z.rows] += gaussian_sums(
                z.xy,
                tree.data,
                w.weights[idx],
                h,
                params.cutoff_bandwidths,
                params.grid_cells_per_bandwidth,
            )
    return raw


def _spread(evidence: pa.ListArray, rows: np.ndarray, n: int) -> pa.ListArray:
    """Evidence of the covered communities ``rows`` placed among all ``n`` (others empty)."""
    position = np.full(n, len(evidence), dtype=np.int64)
    position[rows] = np.arange(len(evidence))
    return pa.concat_arrays([evidence, no_evidence(1)]).take(pa.array(position))


def _merge(
    best: tuple[np.ndarray, np.ndarray, np.ndarray],
    at: np.ndarray,
    value: np.ndarray,
    incident: np.ndarray,
    rank: int,
) -> None:
    """Fold candidates (one row per community ``at``) into the running top-k, in place.

    Order: greater contribution first, then the lower bandwidth rank, then the lower incident
    row, as ``top_ids`` orders the exact path's pairs. Missing candidates have value −1, and
    so do those already in the top-k (a wider search returns the nearer ones again).
    """
    val, inc, rk = best
    k = val.shape[1]
    seen = (incident[:, :, None] == inc[at][:, None, :]).any(axis=2) & (incident >= 0)
    value = np.where(seen, -1.0, value)
    v = np.concatenate([val[at], value], axis=1)
    i = np.concatenate([inc[at], incident], axis=1)
    r = np.concatenate([rk[at], np.full(value.shape, rank)], axis=1)
    order = np.lexsort((i, r, -v), axis=1)[:, :k]
    val[at] = np.take_along_axis(v, order, axis=1)
    inc[at] = np.take_along_axis(i, order, axis=1)
    rk[at] = np.take_along_axis(r, order, axis=1)


def _weight_tiers(
    z: _Zone, w: IncidentWeights
) -> list[tuple[float, int, float, np.ndarray, cKDTree]]:
    """The zone's incidents by bandwidth and weight band (×√2), heaviest band first."""
    tiers = []
    for rank, (h, idx, tree) in enumerate(z.classes):
        level = np.floor(2.0 * np.log2(w.weights[idx]))
        for lv in np.unique(level):
            sel = level == lv
            tiers.append(
                (float(w.weights[idx[sel]].max()), rank, h, idx[sel], cKDTree(tree.data[sel]))
            )
    tiers.sort(key=lambda t: (-t[0], t[1]))
    return tiers


def _grid_evidence(
    zones: list[_Zone], w: IncidentWeights, ids: np.ndarray, n: int, k: int, cutoff: float
) -> pa.ListArray:
    """The ``k`` incidents contributing most to each community, exactly, without all pairs.

    Incidents are searched in bands of similar weight, heaviest first. A band is searched for a
    community only while its heaviest weight could still beat the community's k-th best; in a
    band, the nearest ``k`` come first, then four times as many while the most an unseen one
    could add (the band's heaviest weight at the farthest candidate's distance) still could.
    In dense places the few recent, deadly incidents settle the list and the many light ones
    are never listed.
    """
    val = np.full((n, k), -1.0)
    inc = np.full((n, k), -1, dtype=np.int64)
    rk = np.full((n, k), np.iinfo(np.int64).max)
    for z in zones:
        for wmax, rank, h, idx, tree in _weight_tiers(z, w):
            rows = np.flatnonzero(val[z.rows, k - 1] <= wmax)
            many = k
            while rows.size:
                # Always from the nearest: among equidistant incidents the tree's order differs
                # from one k to another, so "the next ones" could skip some.
                last = min(many, len(idx))
                d, j = tree.query(
                    z.xy[rows], k=list(range(1, last + 1)), distance_upper_bound=cutoff * h
                )
                found = np.isfinite(d)
                value = np.where(
                    found, w.weights[idx[np.minimum(j, len(idx) - 1)]] * kernel(d, h), -1.0
                )
                incident = np.where(found, idx[np.minimum(j, len(idx) - 1)], -1)
                at = z.rows[rows]
                _merge((val, inc, rk), at, value, incident, rank)
                if last >= len(idx):
                    break
                full = found[:, -1]
                bound = wmax * kernel(d[full, -1], h)
                rows = rows[full][bound >= val[at[full], k - 1]]
                many *= 4
    have = inc >= 0
    source = np.repeat(np.arange(n), k)[have.ravel()]
    strength = val.ravel()[have.ravel()]
    return top_ids(source, ids[inc.ravel()[have.ravel()]], strength, n, k=k)


#: The columns of the incidents the factor reads.
READS = ("incident_id", "date", "type", "fatalities", "location_precision")


@dataclass(frozen=True)
class _Shared:
    """What every partition reads: the reference date (from every incident), and its share
    of ``exact_pair_limit`` per community."""

    reference_date: dt.date | None
    pairs_per_community: float


class IncidentIntensity:
    """Severity-weighted, distance- and age-decayed sum of incidents around each community."""

    name: ClassVar[str] = "incident_intensity"
    evidence_kind: ClassVar[Kind] = Kind.incidents
    Params: ClassVar[type[IncidentIntensityParams]] = IncidentIntensityParams

    #: Incident ids kept per community as evidence, strongest contribution first.
    top_k: ClassVar[int] = 5

    def compute(self, inputs: RiskInputs, params: FactorParams) -> FactorResult:
        """Raw intensity, normalised value, evidence and context columns for every community."""
        return compute_all(self, inputs, params)

    def prepare(self, inputs: RiskInputs, params: FactorParams) -> Prepared:
        """The reference date (shared: from every incident), and the incidents near a box."""
        if not isinstance(params, IncidentIntensityParams):
            raise TypeError(
                f"{self.name} needs IncidentIntensity.Params, got {type(params).__name__}"
            )
        incidents = only(_incidents(inputs), READS)
        ref = resolve_reference_date(incidents, params)
        bounds = shapely.bounds(incidents.geometry.to_numpy())
        reach = params.cutoff_bandwidths * max(params.bandwidth_km.values(), default=0.0) * 1e3

        def select(box: Box | None) -> gpd.GeoDataFrame:
            return incidents if box is None else subset(incidents, near(bounds, box, reach))

        # A partition's share of exact_pair_limit, per community: the exact sums of all
        # partitions together never list more pairs than the limit.
        share = params.exact_pair_limit / max(len(inputs.communities), 1)
        return Prepared(_Shared(ref, share), select)

    def evaluate(
        self,
        shared: _Shared,
        selected: gpd.GeoDataFrame,
        inputs: RiskInputs,
        params: FactorParams,
    ) -> FactorResult:
        """The communities of ``inputs`` against the incidents within reach of them."""
        assert isinstance(params, IncidentIntensityParams)
        ref, incidents = shared.reference_date, selected
        communities = inputs.communities
        n = len(communities)
        covered = inputs.covered(Kind.incidents)

        raw = np.where(covered, 0.0, np.nan)
        count = np.where(covered, 0.0, np.nan)
        fatalities_in_reach = np.where(covered, 0.0, np.nan)
        latest = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
        evidence = no_evidence(n)
        method, pairs = None, 0

        if ref is not None and len(incidents) and n:
            w = incident_weights(incidents, params, ref)
            # Every community: one beyond the declared coverage that incidents reach has
            # evidence all the same (only "nothing found" needs coverage to mean 0).
            rows = np.arange(n)
            points = communities.geometry.to_numpy()[rows]
            zones = _zones(points, incidents, w, params)
            count[rows] = _reach_counts(zones, rows.size, params.cutoff_bandwidths)
            pairs = int(count[rows].sum())
            method = params.method
            if method == "auto":
                method = "exact" if pairs <= shared.pairs_per_community * n else "grid"
            if method == "exact":
                sums = _sums(points, incidents, w, params, self.top_k)
                raw[rows], fatalities_in_reach[rows] = sums.raw, sums.deaths
                latest[rows] = sums.latest
                evidence = sums.evidence_for(rows, n)
            else:
                # Deaths and dates in reach would need every pair; the grid path leaves them
                # unknown rather than approximate.
                raw[rows] = _grid_raw(zones, w, rows.size, params)
                fatalities_in_reach[rows] = np.nan
                ids = _column(incidents, "incident_id").astype(str).to_numpy()
                evidence = _grid_evidence(
                    zones, w, ids, rows.size, self.top_k, params.cutoff_bandwidths
                )
                evidence = _spread(evidence, rows, n)

        # Reach, not the sum: the k-d tree counts are the same for both methods.
        has = covered | (np.nan_to_num(count) > 0)
        raw[~has] = np.nan
        count[~has] = np.nan
        fatalities_in_reach[~has] = np.nan
        words = (
            _column(incidents, "location_precision")
            .map({"exact": "precise", "near": "approximate", "admin2": "approximate"})
            .fillna("stand_in")
            .to_numpy(dtype=object)
        )
        return FactorResult(
            name=self.name,
            raw=raw,
            normalised=1.0 - np.exp(-raw / params.saturation),
            evidence=evidence,
            precision=precision_of(evidence, _column(incidents, "incident_id"), words),
            columns={
                "incidents_in_reach": count,
                "fatalities_in_reach": fatalities_in_reach,
                "latest_incident": latest,
            },
            metadata={"method": method, "pairs": pairs},
        )

    def finish(
        self,
        shared: _Shared,
        merged: FactorResult,
        inputs: RiskInputs,
        params: FactorParams,
    ) -> FactorResult:
        """The metadata of all partitions: counts of every incident, pairs added up."""
        assert isinstance(params, IncidentIntensityParams)
        ref, incidents = shared.reference_date, _incidents(inputs)
        excluded = dict.fromkeys(EXCLUSION_REASONS, 0)
        used = 0
        if ref is not None and len(incidents):
            excluded = {k: int(m.sum()) for k, m in exclusions(incidents, params, ref).items()}
            used = len(incidents) - sum(excluded.values())  # the reasons are disjoint
        parts = merged.metadata["partitions"]
        methods = sorted({p["method"] for p in parts if p["method"] is not None})
        method = methods[0] if len(methods) == 1 else (" and ".join(methods) or None)
        pairs = sum(p["pairs"] for p in parts)
        merged.metadata = self._metadata(params, ref, excluded, used, len(incidents), method, pairs)
        return merged

    @staticmethod
    def _metadata(
        params: IncidentIntensityParams,
        ref: dt.date | None,
        excluded: dict[str, int],
        used: int,
        total: int,
        method: str | None,
        pairs: int,
    ) -> dict[str, Any]:
        """What a reader of the build needs to reproduce or question the values."""
        return {
            "reference_date": ref.isoformat() if ref is not None else None,
            "reference_date_source": "parameter"
            if params.reference_date is not None
            else "newest incident",
            "incidents_total": total,
            "incidents_used": used,
            "excluded": excluded,
            "pairs_in_reach": pairs,
            "method": method,
            "grid_cells_per_bandwidth": params.grid_cells_per_bandwidth
            if method is not None and "grid" in method
            else None,
            "formula": FORMULA,
            "params": params.model_dump(mode="json"),
        }
