"""Tailings exposure: the chance a failure's flow reaches a community, or its spill the river below.

Per dam (``dam_table``): the run-out distribution of ``runout.py`` (two laws, a log-normal
spread fitted on historic failures, unknown height or volume drawn from the register), a weight
from status and construction method, and the reaches of river below it. A community at d
metres is exposed through two pathways, and for each dam the stronger counts:

* run-out: weight · P(run-out ≥ d), within ``overland_max_km`` (a long run-out follows valleys,
  not a circle: beyond it only the river pathway counts);
* river: within ``river_corridor_km`` of the river below the dam (``rivers.py``), at an
  along-river distance s of at most R = max(median run-out, ``river_reach_km``):
  weight · (1 − s/R).

raw = Σ over dams; normalised = 1 − exp(−raw / saturation). An incident of a failure type
(``schemas.FAILURE_TYPES``) within ``failure_match_km`` of a registered dam marks it failed;
one with no dam near is a dam of unknown size where it happened (a failure is proof a dam was
there). A community within a failed dam's p90 run-out, or on the river below it, has
normalised 1, the failure among its evidence. Where the register does not reach and no dam's
flow does, the value is "no data".

The ``tailings_consequence`` layer gives per dam the run-out band, who is inside it and the
expected number of people a failure would reach (Σ P(reach) × population, with its 80 % range,
two significant figures: an upper-bound screening estimate, the run-out a circle rather than a
valley), and an indicative GISTM-style class. Formulas and parameters: ``docs/methodology.md`` §2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pydantic import Field, field_validator

from geo_service.risk.base import (
    FactorParams,
    FactorResult,
    Prepared,
    RiskInputs,
    compute_all,
    no_evidence,
    top_ids,
)
from geo_service.risk.metric import nearest, pairs_within
from geo_service.risk.rivers import Reaches, RiverNetwork
from geo_service.risk.runout import (
    LAWS,
    PROVENANCE,
    UNITS,
    RegisterDistribution,
    Runout,
    round_significant,
)
from geo_service.schemas import Kind, is_failure

#: GISTM consequence classes by population at risk (upper bounds, inclusive).
GISTM_CLASSES = (
    (0, "Low"),
    (10, "Significant"),
    (100, "High"),
    (1000, "Very High"),
)
GISTM_TOP = "Extreme"
CLASS_NOTE = "indicative, not an engineering classification"
PEOPLE_NOTE = (
    "people a failure would reach: expected number (Σ P(reach) × population of the places "
    "within the overland limit) and the 80 % range, two significant figures; an upper-bound "
    "screening estimate, the run-out a circle rather than a valley, each place's population "
    "counted at its point; the indicative class is that of the expected number (a place of "
    "unknown size counting as one person)"
)
#: Below this chance of being reached, the run-out pathway is not searched further.
NEGLIGIBLE = 0.001

LAYER_COLUMNS = [
    "dam_id",
    "name",
    "country",
    "commodity",
    "status",
    "construction_method",
    "height_m",
    "volume_m3",
    "height_estimated",
    "volume_estimated",
    "failed",
    "failure_date",
    "failure_incident",
    "dam_weight",
    "vf_low_mm3",
    "vf_high_mm3",
    "runout_rico2008_p50_km",
    "runout_concha_larrauri_lall2018_p50_km",
    "runout_p10_km",
    "runout_p50_km",
    "runout_p90_km",
    "runout_reach_km",
    "runout_models",
    "communities_in_runout",
    "people_in_runout",
    "people_in_runout_p10",
    "people_in_runout_p90",
    "people_note",
    "communities_unknown_population",
    "communities_downstream",
    "river_name",
    "river_snap_km",
    "river_path_km",
    "indicative_consequence_class",
    "indicative_class_note",
    "reported_consequence",
    "source",
    "source_id",
]


class TailingsExposureParams(FactorParams):
    """Parameters of the tailings-exposure factor (section ``[tailings_exposure]``)."""

    weight: float = Field(1.0, ge=0.0, description="Weight of this factor in the combined score.")
    runout_spread_log10: dict[str, float] = Field(
        default_factory=lambda: {"rico2008": 0.86, "concha_larrauri_lall2018": 0.75},
        description="Per run-out law, the log10 standard deviation of observed run-outs "
        "around its median, fitted on layers/sources/tailings_failures/tailings_failures.csv ('riskmap "
        "backtest' prints it; a test keeps the two equal).",
    )
    unknown_attributes: RegisterDistribution = Field(
        default_factory=RegisterDistribution,
        description="Heights and stored volumes of the register (log10, bivariate normal), "
        "drawn from where a dam's are unknown: the ANM tailings dams of the bundled register.",
    )
    status_weights: dict[str, float] = Field(
        default_factory=lambda: {
            "active": 1.0,
            "inactive": 0.9,
            "decommissioning": 0.8,
            "under construction": 0.5,
            "failed": 1.0,
            "unknown": 1.0,
        },
        description="Weight by status. An inactive dam still holds its tailings (Córrego do "
        "Feijão Dam I had been inactive since 2016 when it failed in 2019); decommissioning "
        "removes them over years; a dam under construction holds little yet. Missing or "
        "unlisted statuses take 'unknown' (precautionary: 1).",
    )
    construction_method_weights: dict[str, float] = Field(
        default_factory=lambda: {
            "upstream": 1.0,
            "centreline": 0.7,
            "downstream": 0.5,
            "single_stage": 0.5,
            "unknown": 0.8,
        },
        description="Weight by construction method: upstream-raised dams, built on their own "
        "tailings, fail most often; centreline ones sit between; downstream-raised and "
        "single-stage dams are the most stable. Missing or unlisted methods take 'unknown'.",
    )
    max_runout_km: float | None = Field(
        700.0,
        gt=0.0,
        description="Cap on the run-out quantiles, above the longest recorded run-out "
        "(Fundão 2015, ~650 km down the Rio Doce to the Atlantic); None for no cap.",
    )
    overland_max_km: float | None = Field(
        25.0,
        gt=0.0,
        description="Radius beyond which the run-out pathway stops: the laws give "
        "along-valley distances, and a flow that goes further is channelled by valleys and "
        "rivers (Brumadinho 2019 ran about 10 km over land, Fundão 2015 about 55 km down "
        "streams before the Rio Doce), so only the river pathway reaches past it. None for no "
        "limit.",
    )
    river_reach_km: float = Field(
        300.0,
        gt=0.0,
        description="How far down a river pollution is followed when that is beyond the median "
        "run-out (the 2021 Catoca spill travelled hundreds of km down the Tshikapa and Kasai).",
    )
    river_snap_km: float = Field(
        5.0, gt=0.0, description="A dam this close to a mapped river spills into it."
    )
    river_corridor_km: float = Field(
        5.0, gt=0.0, description="A community this close to the river below a dam is on it."
    )
    failure_match_km: float = Field(
        2.0,
        gt=0.0,
        description="A failure incident this close to a registered dam is that dam's failure "
        "(the nearest one). Kept short: a failed dam is often gone from the register (Fundão, "
        "Córrego do Feijão I), and a mining complex has other dams a few km apart.",
    )
    saturation: float = Field(
        1.0,
        gt=0.0,
        description="κ in normalised = 1 − exp(−raw / κ): the raw value that maps to 0.63, "
        "one active, upstream-raised dam certain to reach the community.",
    )
    nearest_search_km: float = Field(
        50.0, gt=0.0, description="The nearest_dam_km column looks this far (NaN beyond)."
    )
    evidence_max: int = Field(10, ge=1, description="Dam ids kept per community, strongest first.")

    @field_validator("status_weights", "construction_method_weights")
    @classmethod
    def _has_unknown(cls, v: dict[str, float]) -> dict[str, float]:
        if "unknown" not in v:
            raise ValueError("needs an 'unknown' entry for missing or unlisted values")
        if any(w < 0 for w in v.values()):
            raise ValueError("weights must be >= 0")
        return v

    @field_validator("runout_spread_log10")
    @classmethod
    def _known_laws(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(v) - set(LAWS))
        if unknown or not v:
            raise ValueError(f"run-out laws are {', '.join(LAWS)}; got {', '.join(v) or 'none'}")
        if any(not s > 0 for s in v.values()):
            raise ValueError("spreads must be > 0")
        return v


def gistm_class(population_at_risk: np.ndarray) -> np.ndarray:
    """GISTM consequence-class words for populations at risk (0 Low … > 1,000 Extreme)."""
    par = np.asarray(population_at_risk, dtype="float64")
    conds = [par <= bound for bound, _ in GISTM_CLASSES]
    return np.select(conds, [label for _, label in GISTM_CLASSES], GISTM_TOP).astype(object)


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    """A column, or all-missing values when the frame lacks it."""
    if name in frame:
        return frame[name]
    return pd.Series([None] * len(frame), index=frame.index, dtype=object)


def _lookup(values: pd.Series, weights: dict[str, float]) -> np.ndarray:
    """Per value, its weight ('unknown' for missing or unlisted values)."""
    key = values.astype("string").str.strip().str.lower()
    return key.map(weights).fillna(weights["unknown"]).to_numpy(dtype="float64")


def _known(values: pd.Series) -> np.ndarray:
    """The values as floats, NaN where unknown (missing, or not > 0)."""
    x = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64")
    return np.where(x > 0, x, np.nan)


def failure_incidents(incidents: gpd.GeoDataFrame | None) -> gpd.GeoDataFrame | None:
    """The incidents whose type is a dam or tailings failure (None when there are none)."""
    if incidents is None or len(incidents) == 0 or "type" not in incidents:
        return None
    geoms = incidents.geometry.to_numpy()
    hit = is_failure(incidents["type"]) & ~shapely.is_missing(geoms)
    return incidents[hit].reset_index(drop=True) if hit.any() else None


def _mark_failures(
    dams: gpd.GeoDataFrame, failures: gpd.GeoDataFrame | None, params: TailingsExposureParams
) -> gpd.GeoDataFrame:
    """The register with each failure on the dam it happened at (within ``failure_match_km``),
    and a dam of unknown size for each failure no registered dam is near.

    A restricted failure report (the model reads it at its cell's centre) marks a dam failed
    without its date, id or words, which the public may not know.
    """
    dams = dams.copy()
    dams["failed"] = False
    dams["failure_date"] = pd.Series([None] * len(dams), index=dams.index, dtype=object)
    dams["failure_incident"] = pd.Series([None] * len(dams), index=dams.index, dtype=object)
    if failures is None:
        return dams
    order = failures.sort_values("date", kind="stable").reset_index(drop=True)
    secret = _column(order, "sensitivity").eq("restricted").fillna(False).to_numpy(dtype=bool)
    dates = np.array(
        [
            None if s else pd.Timestamp(d).date().isoformat()
            for d, s in zip(order["date"], secret, strict=True)
        ],
        dtype=object,
    )
    ids = np.where(secret, None, order["incident_id"].astype(str).to_numpy(dtype=object))
    found, _ = nearest(
        order.geometry.to_numpy(), dams.geometry.to_numpy(), params.failure_match_km * 1000.0
    )
    matched = found >= 0
    # The latest failure of a dam is the one it shows (failures are ordered by date).
    for i in np.flatnonzero(matched):
        j = dams.index[found[i]]
        dams.loc[j, ["failed", "failure_date", "failure_incident"]] = [True, dates[i], ids[i]]
    lone = np.flatnonzero(~matched)
    if len(lone):
        rows = order.iloc[lone]
        hidden = secret[lone]
        names = _column(rows, "description").fillna("tailings failure").to_numpy(dtype=object)
        added = gpd.GeoDataFrame(
            {
                "dam_id": np.where(
                    hidden, [f"restricted-failure:{k}" for k in range(len(lone))], ids[lone]
                ),
                "name": np.where(hidden, "recorded failure (a report shown only by area)", names),
                "country": _column(rows, "country").to_numpy(dtype=object),
                "commodity": np.where(
                    hidden, None, _column(rows, "commodity").to_numpy(dtype=object)
                ),
                "status": "failed",
                "construction_method": None,
                "height_m": np.nan,
                "volume_m3": np.nan,
                "failed": True,
                "failure_date": dates[lone],
                "failure_incident": ids[lone],
                "source": np.where(hidden, None, _column(rows, "source").to_numpy(dtype=object)),
                "source_id": np.where(
                    hidden, None, _column(rows, "source_id").to_numpy(dtype=object)
                ),
            },
            geometry=rows.geometry.to_numpy(),
            crs="EPSG:4326",
        )
        dams = pd.concat([dams, added], ignore_index=True)
    return gpd.GeoDataFrame(dams, geometry="geometry", crs="EPSG:4326")


@dataclass(frozen=True)
class DamTable:
    """Per dam, what both the community factor and the surface use (one derivation)."""

    dams: gpd.GeoDataFrame
    runout: Runout
    weight: np.ndarray
    failed: np.ndarray
    height_estimated: np.ndarray
    volume_estimated: np.ndarray
    #: Run-out quantiles (km) capped at ``max_runout_km``.
    p10_km: np.ndarray
    p50_km: np.ndarray
    p90_km: np.ndarray
    #: How far the run-out pathway is searched (m): overland limit, or where P(reach) falls
    #: below ``NEGLIGIBLE``; and how far a failed dam's flow is taken to have reached (m).
    search_m: np.ndarray
    reached_m: np.ndarray
    #: River reach R (m) below each dam: max(median run-out, river_reach_km).
    river_reach_m: np.ndarray
    #: Rows of the register (the rest are failures where no registered dam is near).
    registered: int = 0

    def __len__(self) -> int:
        return len(self.dams)

    @property
    def ids(self) -> np.ndarray:
        """Dam ids as text."""
        return self.dams["dam_id"].astype(str).to_numpy(dtype=object)

    def exposure(self, metres: np.ndarray, dam: np.ndarray) -> np.ndarray:
        """Run-out pathway: weight · P(run-out ≥ d) for (metres, dam index) pairs."""
        return self.weight[dam] * self.runout.exceedance(metres / 1000.0, dam)

    def river(self, along_m: np.ndarray, dam: np.ndarray) -> np.ndarray:
        """River pathway: weight · (1 − s/R) for (along-river metres, dam index) pairs."""
        return np.clip(1.0 - along_m / self.river_reach_m[dam], 0.0, 1.0) * self.weight[dam]


def dam_table(
    dams: gpd.GeoDataFrame | None,
    incidents: gpd.GeoDataFrame | None,
    params: TailingsExposureParams,
) -> DamTable | None:
    """The register with its failures marked, and each dam's run-out, weight and reaches."""
    failures = failure_incidents(incidents)
    if (dams is None or len(dams) == 0) and failures is None:
        return None
    if dams is None or len(dams) == 0:
        dams = gpd.GeoDataFrame({"dam_id": pd.Series([], dtype=object)}, geometry=[], crs=4326)
    geoms = dams.geometry.to_numpy()
    dams = dams[~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)].reset_index(drop=True)
    registered = len(dams)
    dams = _mark_failures(dams, failures, params)
    height = _known(_column(dams, "height_m"))
    volume = _known(_column(dams, "volume_m3"))
    run = Runout.of(height, volume, params.runout_spread_log10, params.unknown_attributes)
    cap = params.max_runout_km if params.max_runout_km is not None else np.inf
    overland = params.overland_max_km if params.overland_max_km is not None else np.inf
    failed = dams["failed"].to_numpy(dtype=bool)
    status = _column(dams, "status").astype(object).where(~failed, "failed")
    weight = _lookup(status, params.status_weights) * _lookup(
        _column(dams, "construction_method"), params.construction_method_weights
    )
    p10, p50, p90 = (np.minimum(q, cap) for q in (run.p10_km, run.p50_km, run.p90_km))
    negligible = np.minimum(10.0 ** _negligible_log10(run), cap)
    return DamTable(
        dams=dams,
        runout=run,
        weight=weight,
        failed=failed,
        height_estimated=np.isnan(height),
        volume_estimated=np.isnan(volume),
        p10_km=p10,
        p50_km=p50,
        p90_km=p90,
        search_m=np.minimum(negligible, overland) * 1000.0,
        reached_m=np.minimum(p90, overland) * 1000.0,
        river_reach_m=np.maximum(p50, params.river_reach_km) * 1000.0,
        registered=registered,
    )


def _negligible_log10(run: Runout) -> np.ndarray:
    """log10 km where the chance of being reached falls to ``NEGLIGIBLE`` (upper bound)."""
    from scipy.special import ndtri

    z = float(-ndtri(NEGLIGIBLE / len(run.laws)))
    return (run.mu + z * run.sigma).max(axis=1)


#: Run-out radii below this are searched together (see ``_runout_pairs``).
SMALL_RADIUS_M = 16_000.0


def _strongest(source: np.ndarray, strength: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` strongest pairs of every source (numeric only: ids come later).

    One float sort key orders by source, then strongest first (strengths scaled into [0, ½]).
    """
    top = float(strength.max()) if len(strength) else 1.0
    order = np.argsort(source + 0.5 * (1.0 - strength / (top or 1.0)), kind="stable")
    s = source[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]]) if len(s) else s
    rank = np.arange(len(s)) - np.repeat(starts, np.diff(np.r_[starts, len(s)]))
    return order[rank < k]


def _runout_pairs(
    communities: np.ndarray, dams: np.ndarray, radius_m: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(community, dam, metres) for every community within its dam's radius.

    ``pairs_within`` queries its tree with the largest radius of the call, so dams are grouped
    by radius (doublings above 16 km, everything smaller together): one huge dam does not make
    every small one search 700 km, and the few calls keep re-projection of the points cheap.
    """
    ok = np.isfinite(radius_m) & (radius_m > 0)
    group = np.full(len(dams), -1, dtype=np.int64)
    group[ok] = np.floor(np.log2(np.maximum(radius_m[ok], SMALL_RADIUS_M))).astype(np.int64)
    src, tgt, met = [], [], []
    for g in np.unique(group[ok]):
        idx = np.flatnonzero(group == g)
        pairs = pairs_within(communities, dams[idx], radius_m[idx])
        src.append(pairs.source)
        tgt.append(idx[pairs.target])
        met.append(pairs.metres)
    if not src:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, np.empty(0)
    return np.concatenate(src), np.concatenate(tgt), np.concatenate(met)


@dataclass(frozen=True)
class _Pathways:
    """Every (community, dam) pair a dam reaches, by either pathway."""

    community: np.ndarray
    dam: np.ndarray
    strength: np.ndarray
    #: The pair is inside the dam's p90 run-out (overland), or on the river below it.
    inside: np.ndarray
    on_river: np.ndarray
    probability: np.ndarray


@dataclass
class DamRivers:
    """The river below every dam, found once: the network, the reaches below the dams that
    snap to it, and per dam the river's name, the snap and the length of the path (km)."""

    network: RiverNetwork | None
    reaches: Reaches | None
    facts: dict[str, np.ndarray]
    meta: dict[str, Any]


def dam_rivers(
    table: DamTable, rivers: gpd.GeoDataFrame | None, params: TailingsExposureParams
) -> DamRivers:
    """Each dam snapped to the river network (within ``river_snap_km``), and its reach below."""
    m = len(table)
    facts = {
        "river_name": np.full(m, None, dtype=object),
        "river_snap_km": np.full(m, np.nan),
        "river_path_km": np.full(m, np.nan),
    }
    if rivers is None or not len(rivers):
        return DamRivers(None, None, facts, {"river_network": None, "dams_on_river": 0})
    network = RiverNetwork.from_frame(rivers)
    d_geom = table.dams.geometry.to_numpy()
    edge, pos, snap_m = network.snap(d_geom, params.river_snap_km * 1000.0)
    reaches = network.reaches(edge, pos, table.river_reach_m, np.nan_to_num(snap_m))
    on = edge >= 0
    facts["river_name"][on] = network.edge_name[edge[on]]
    facts["river_snap_km"][on] = snap_m[on] / 1000.0
    facts["river_path_km"][on] = (
        np.bincount(reaches.source, reaches.hi_m - reaches.lo_m, minlength=m)[on] / 1000.0
    )
    meta = {"river_network": network.summary, "dams_on_river": int(on.sum())}
    return DamRivers(network, reaches, facts, meta)


def pathways(
    points: np.ndarray,
    table: DamTable,
    rivers: DamRivers,
    params: TailingsExposureParams,
) -> _Pathways:
    """Both pathways for ``points``: the run-out around each dam, the river below it."""
    m = len(table)
    d_geom = table.dams.geometry.to_numpy()
    rs, rt, rm = _runout_pairs(points, d_geom, table.search_m)
    w_run = table.exposure(rm, rt)
    p_run = table.runout.exceedance(rm / 1000.0, rt)
    inside_run = rm <= table.reached_m[rt]
    vs = vt = np.empty(0, dtype=np.int64)
    w_riv = np.empty(0)
    if rivers.network is not None and rivers.reaches is not None:
        rp = rivers.network.along(rivers.reaches, points, params.river_corridor_km * 1000.0)
        vs, vt = rp.point, rp.source
        w_riv = table.river(rp.along_m, vt)
    # Per (community, dam): the stronger pathway; inside if either says so.
    src, tgt = np.r_[rs, vs], np.r_[rt, vt]
    w = np.r_[w_run, w_riv]
    ins = np.r_[inside_run, np.zeros(len(vs), bool)]
    riv = np.r_[np.zeros(len(rs), bool), np.ones(len(vs), bool)]
    prob = np.r_[p_run, np.zeros(len(vs))]
    key = src * max(m, 1) + tgt
    order = np.argsort(key, kind="stable")
    key = key[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else key
    if len(key):
        pair_w = np.maximum.reduceat(w[order], starts)
        pair_in = np.logical_or.reduceat(ins[order], starts)
        pair_riv = np.logical_or.reduceat(riv[order], starts)
        pair_p = np.maximum.reduceat(prob[order], starts)
    else:
        pair_w, pair_in, pair_riv, pair_p = w, ins, riv, prob
    return _Pathways(
        key[starts] // max(m, 1), key[starts] % max(m, 1), pair_w, pair_in, pair_riv, pair_p
    )


class TailingsExposure:
    """Exposure of communities to tailings dam failures: run-out chance and rivers below."""

    name: ClassVar[str] = "tailings_exposure"
    evidence_kind: ClassVar[Kind] = Kind.tailings_dams
    Params: ClassVar[type[FactorParams]] = TailingsExposureParams

    def compute(self, inputs: RiskInputs, params: FactorParams) -> FactorResult:
        """Run-out and river exposure per community, and the ``tailings_consequence`` layer."""
        return compute_all(self, inputs, params)

    def prepare(self, inputs: RiskInputs, params: FactorParams) -> Prepared:
        """The register with its failures marked, and the rivers below the dams: shared by
        every partition (dams are thousands, their reaches a few rivers)."""
        assert isinstance(params, TailingsExposureParams)
        table = dam_table(inputs.tailings_dams, inputs.incidents, params)
        rivers = dam_rivers(table, inputs.rivers, params) if table is not None else None
        return Prepared(_Shared(table, rivers), lambda box: None)

    def evaluate(
        self, shared: _Shared, selected: None, inputs: RiskInputs, params: FactorParams
    ) -> FactorResult:
        """The communities of ``inputs``; per dam, what they add to its consequence."""
        assert isinstance(params, TailingsExposureParams)
        communities = inputs.communities
        n = len(communities)
        covered = inputs.covered(self.evidence_kind)
        table = shared.table
        if table is None or shared.rivers is None:
            nan_or_zero = np.where(covered, 0.0, np.nan)
            return FactorResult(
                name=self.name,
                raw=nan_or_zero.copy(),
                normalised=nan_or_zero.copy(),
                evidence=no_evidence(n),
                columns={
                    "dams_in_runout": nan_or_zero.copy(),
                    "dams_downstream": nan_or_zero.copy(),
                    "reach_probability": nan_or_zero.copy(),
                    "failures_in_reach": nan_or_zero.copy(),
                    "nearest_dam_km": np.full(n, np.nan),
                },
            )
        c_geom = communities.geometry.to_numpy()
        paths = pathways(c_geom, table, shared.rivers, params)
        pc, pd_, pw = paths.community, paths.dam, paths.strength
        hit = table.failed[pd_] & (paths.inside | paths.on_river)

        raw = np.bincount(pc, pw, minlength=n)
        reached = np.bincount(pc[hit], minlength=n) > 0
        # Evidence gives the factor data where a dam reaches, register or not.
        has = covered | (raw > 0) | reached
        raw = np.where(has, raw, np.nan)
        normalised = np.where(reached, 1.0, 1.0 - np.exp(-raw / params.saturation))
        ids = table.ids
        # Evidence: a reached failure first (its dam, then the incident), then the strongest.
        strength = pw + np.where(hit, 2.0, 0.0)
        keep = np.flatnonzero(has[pc])
        keep = keep[_strongest(pc[keep], strength[keep], params.evidence_max)]
        e_src, e_ids, e_str = pc[keep], ids[pd_[keep]], strength[keep]
        incident = table.dams["failure_incident"].to_numpy(dtype=object)
        named = pd.notna(incident[pd_[keep]])
        extra = keep[hit[keep] & named & (incident[pd_[keep]] != ids[pd_[keep]])]
        e_src = np.r_[e_src, pc[extra]]
        e_ids = np.r_[e_ids, incident[pd_[extra]]]
        e_str = np.r_[e_str, strength[extra] - 1e-9]
        evidence = top_ids(e_src, e_ids, e_str, n, params.evidence_max + 1)
        estimated = table.height_estimated | table.volume_estimated
        word = np.where(estimated[pd_], "estimated", "precise").astype(object)
        precision = _strongest_word(pc, strength, word, n)
        _, near_m = nearest(c_geom, table.dams.geometry.to_numpy(), params.nearest_search_km * 1000)
        inside = paths.inside
        probability = np.zeros(n)
        np.maximum.at(probability, pc, paths.probability)
        columns = {
            "dams_in_runout": np.where(has, np.bincount(pc[inside], minlength=n), np.nan),
            "dams_downstream": np.where(has, np.bincount(pc[paths.on_river], minlength=n), np.nan),
            "reach_probability": np.where(has, np.round(probability, 3), np.nan),
            "failures_in_reach": np.where(has, np.bincount(pc[hit], minlength=n), np.nan),
            "nearest_dam_km": np.where(has, near_m / 1000.0, np.nan),
        }
        return FactorResult(
            name=self.name,
            raw=raw,
            normalised=normalised,
            evidence=evidence,
            columns=columns,
            precision=precision,
            sums=_consequence_sums(len(table), paths, communities),
        )

    def finish(
        self, shared: _Shared, merged: FactorResult, inputs: RiskInputs, params: FactorParams
    ) -> FactorResult:
        """The ``tailings_consequence`` layer from every partition's sums, and the metadata."""
        assert isinstance(params, TailingsExposureParams)
        metadata: dict[str, Any] = {
            "laws": {k: LAWS[k].record() for k in params.runout_spread_log10},
            "units": UNITS,
            "provenance": PROVENANCE,
            "runout_spread_log10": dict(params.runout_spread_log10),
            "formula": "raw = Σ_dams max(w·P(run-out ≥ d), w·(1 − s/R)), w = status weight · "
            "construction-method weight, P from the mixture of the two laws' log-normal "
            "run-outs (d ≤ overland_max_km), s = metres along the river below the dam "
            "(≤ R = max(median run-out, river_reach_km)); normalised = 1 − exp(−raw/saturation), "
            "1 where a recorded failure reached",
        }
        table, rivers = shared.table, shared.rivers
        merged.metadata = metadata
        if table is None or rivers is None:
            merged.layers = {"tailings_consequence": _empty_layer()}
            metadata["dams"] = 0
            return merged
        m = len(table)
        places = inputs.coverage_for(Kind.communities).contains(
            table.dams["country"].to_numpy(dtype=object), table.dams.geometry.to_numpy()
        )
        sums = merged.sums or _consequence_sums(m, None, inputs.communities)
        layer = _consequence_layer(table, sums, rivers.facts, places, params)
        merged.layers = {"tailings_consequence": layer}
        raw, columns = merged.raw, merged.columns
        has = ~np.isnan(raw)
        covered = inputs.covered(self.evidence_kind)
        metadata.update(rivers.meta)
        metadata.update(
            {
                "dams": m,
                "dams_failed": int(table.failed.sum()),
                "failures_without_registered_dam": m - table.registered,
                "dams_height_estimated": int(table.height_estimated.sum()),
                "dams_volume_estimated": int(table.volume_estimated.sum()),
                "communities_exposed": int((np.nan_to_num(raw) > 0).sum()),
                "communities_in_a_runout": int((columns["dams_in_runout"] > 0).sum()),
                "communities_downstream": int((columns["dams_downstream"] > 0).sum()),
                "communities_reached_by_a_failure": int((columns["failures_in_reach"] > 0).sum()),
                "communities_outside_coverage_with_evidence": int((has & ~covered).sum()),
                "indicative_classes": {
                    str(k): int(v)
                    for k, v in layer["indicative_consequence_class"].value_counts().items()
                },
            }
        )
        return merged


@dataclass
class _Shared:
    """What every partition of the communities reads: the dams and the rivers below them."""

    table: DamTable | None
    rivers: DamRivers | None


def _strongest_word(
    source: np.ndarray, strength: np.ndarray, word: np.ndarray, n: int
) -> np.ndarray:
    """Per community, ``word`` of its strongest pair (None without pairs)."""
    out = np.full(n, None, dtype=object)
    if len(source):
        first = _strongest(source, strength, 1)
        out[source[first]] = word[first]
    return out


def _consequence_sums(
    m: int, paths: _Pathways | None, communities: gpd.GeoDataFrame
) -> dict[str, np.ndarray]:
    """Per dam (``m``), what these communities add to its consequence: people expected to be
    reached, people within its p10 and p90 run-out, places of unknown size, and counts."""
    if paths is None:
        empty = np.empty(0, dtype=np.int64)
        paths = _Pathways(
            empty, empty, np.empty(0), empty.astype(bool), empty.astype(bool), np.empty(0)
        )
    run = (~paths.on_river) | (paths.probability > 0)
    pc, pd_, p = paths.community[run], paths.dam[run], paths.probability[run]
    pop = pd.to_numeric(_column(communities, "population"), errors="coerce")
    pop = pop.to_numpy(dtype="float64", na_value=np.nan)[pc]
    known = ~np.isnan(pop)
    # Distance of each pair back from its probability is not kept: inside p10 and p90 radii
    # are decided on the quantiles themselves (P ≥ 0.9 within p10, P ≥ 0.1 within p90).
    in_p90 = paths.inside[run]
    in_p10 = p >= 0.9 - 1e-12
    return {
        "expected": np.bincount(pd_[known], p[known] * pop[known], minlength=m),
        "low": np.bincount(pd_[known & in_p10], pop[known & in_p10], minlength=m),
        "high": np.bincount(pd_[known & in_p90], pop[known & in_p90], minlength=m),
        "unknown_pop": np.bincount(pd_[~known & in_p90], minlength=m),
        # A populated place of unknown size holds at least one person.
        "unknown_expected": np.bincount(pd_[~known], p[~known], minlength=m),
        "in_runout": np.bincount(pd_[in_p90], minlength=m),
        "downstream": np.bincount(paths.dam[paths.on_river], minlength=m),
    }


def _consequence_layer(
    table: DamTable,
    sums: dict[str, np.ndarray],
    river: dict[str, np.ndarray],
    places: np.ndarray,
    params: TailingsExposureParams,
) -> gpd.GeoDataFrame:
    """Per dam: run-out band, who is inside it, people a failure would reach, a class.

    Where no community source covers a dam (``places`` False), who is inside is unknown:
    null, never 0.
    """
    dams = table.dams
    expected, low, high = sums["expected"], sums["low"], sums["high"]
    unknown_pop = sums["unknown_pop"]
    at_risk = expected + sums["unknown_expected"]
    height = _known(_column(dams, "height_m"))
    volume = _known(_column(dams, "volume_m3"))
    eh, ev, *_ = params.unknown_attributes.fill(np.log10(height), np.log10(volume))
    vt = 10.0 ** (ev - 6.0)
    vf = np.column_stack([LAWS[k].released_mm3(vt) for k in table.runout.laws])
    status = _column(dams, "status").astype(object).where(~table.failed, "failed")
    return gpd.GeoDataFrame(
        {
            "dam_id": table.ids,
            "name": _column(dams, "name").to_numpy(dtype=object),
            "country": _column(dams, "country").to_numpy(dtype=object),
            "commodity": _column(dams, "commodity").to_numpy(dtype=object),
            "status": status.to_numpy(dtype=object),
            "construction_method": _column(dams, "construction_method").to_numpy(dtype=object),
            "height_m": height,
            "volume_m3": volume,
            "height_estimated": table.height_estimated,
            "volume_estimated": table.volume_estimated,
            "failed": table.failed,
            "failure_date": dams["failure_date"].to_numpy(dtype=object),
            "failure_incident": dams["failure_incident"].to_numpy(dtype=object),
            "dam_weight": table.weight,
            "vf_low_mm3": vf.min(axis=1),
            "vf_high_mm3": vf.max(axis=1),
            "runout_rico2008_p50_km": _km(table.runout.median_km("rico2008")),
            "runout_concha_larrauri_lall2018_p50_km": _km(
                table.runout.median_km("concha_larrauri_lall2018")
            ),
            "runout_p10_km": _km(table.p10_km),
            "runout_p50_km": _km(table.p50_km),
            "runout_p90_km": _km(table.p90_km),
            "runout_reach_km": _km(table.reached_m / 1000.0),
            "runout_models": _model_text(table, params),
            "communities_in_runout": _known_where(places, sums["in_runout"]),
            "people_in_runout": np.where(places, round_significant(expected), np.nan),
            "people_in_runout_p10": np.where(places, round_significant(low), np.nan),
            "people_in_runout_p90": np.where(places, round_significant(high), np.nan),
            "people_note": PEOPLE_NOTE,
            "communities_unknown_population": _known_where(places, unknown_pop),
            "communities_downstream": _known_where(places, sums["downstream"]),
            **river,
            "indicative_consequence_class": np.where(places, gistm_class(at_risk), None),
            "indicative_class_note": CLASS_NOTE,
            "reported_consequence": _column(dams, "reported_consequence").to_numpy(dtype=object),
            "source": _column(dams, "source").to_numpy(dtype=object),
            "source_id": _column(dams, "source_id").to_numpy(dtype=object),
        },
        geometry=dams.geometry.to_numpy(),
        crs="EPSG:4326",
    )


def _known_where(known: np.ndarray, counts: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """Whole-number counts where ``known``, null elsewhere."""
    out = pd.array(np.asarray(counts, dtype="int64"), dtype="Int64")
    out[~np.asarray(known, dtype=bool)] = pd.NA
    return out


def _km(values: np.ndarray) -> np.ndarray:
    """Kilometres to three significant figures: the laws are not more precise than that."""
    return round_significant(values, 3)


def _model_text(table: DamTable, params: TailingsExposureParams) -> np.ndarray:
    """Per dam: the laws, their spreads and medians, and where the coefficients come from."""
    parts = []
    for k in table.runout.laws:
        law = LAWS[k]
        parts.append(
            np.char.add(
                f"{k} ({law.formula}; log10 spread {params.runout_spread_log10[k]:.2f}): median ",
                np.char.mod("%.3g km", table.runout.median_km(k)),
            )
        )
    text = parts[0]
    for extra in parts[1:]:
        text = np.char.add(np.char.add(text, "; "), extra)
    return np.char.add(text, f". {PROVENANCE}").astype(object)


def _empty_layer() -> gpd.GeoDataFrame:
    """The ``tailings_consequence`` layer with its columns and no rows."""
    return gpd.GeoDataFrame({c: [] for c in LAYER_COLUMNS}, geometry=[], crs="EPSG:4326")
