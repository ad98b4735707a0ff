"""Tailings exposure: who lies in the run-out of a tailings dam failure, or down the river below it.

Per dam, the released volume VF and the maximum run-out distance Dmax come from two empirical
regressions on historical failures (VT, VF in Mm³, H in m, Dmax in km):

* ``rico2008`` — Rico et al. 2008, J. Hazard. Mater. 154:79–87: VF = 0.354·VT^1.01,
  Dmax = 1.61·(H·VF)^0.66;
* ``concha_larrauri_lall2018`` — Concha Larrauri & Lall 2018, Environments 5(2):28:
  VF = 0.332·VT^0.95, Hf = H·(VF/VT)·VF, log10 Dmax = 0.477 + 0.545·log10 Hf.

The two are kept side by side as a low–high range. Exposure uses the high Dmax: the regressions
are loose (Rico's run-out fit has r² = 0.57) and under-estimating the reach of a flow that kills
is the worse error. For the largest dams the fits go beyond anything observed (Rico's gives
1,140 km for a 109 m, 506 Mm³ dam in the bundled register), so the Dmax used is capped at
``max_runout_km``, just above the longest recorded run-out (Fundão 2015 reached the Atlantic
some 650 km down the Rio Doce); the layer keeps the formula values and the one used.

A community is exposed through two pathways, and for each dam the stronger one counts:

* run-out: within Dmax of the dam (straight-line metres, ``metric.pairs_within``), but no
  further than ``overland_max_km`` (a long run-out follows valleys, not a circle: beyond it only
  the river pathway counts), weighted (1 − d/Dmax);
* river: within ``river_corridor_km`` of the river below the dam (``rivers.py``: the dam snapped
  to a Natural Earth river within ``river_snap_km``, the path followed downstream), at an
  along-river distance s (the dam-to-river leg included) of at most R = max(Dmax, river reach),
  weighted (1 − s/R). Upstream communities are not on the path. The 2021 Catoca spill travelled
  hundreds of kilometres down the Tshikapa and the Kasai.

Both weights are multiplied by the dam's status weight and construction-method weight
(upstream-raised dams fail most often; Franks et al. 2021 found stability concerns at 18.3 % of
disclosed upstream facilities). A community's raw value is the sum over dams; normalised =
1 − exp(−raw / saturation), as for incidents: several dams count more than one, without a cap
that would tie every exposed town at the top. Where the dam register does not reach (``coverage``) the value is NaN.

Unknown height or volume (missing, or a volume of 0) takes a documented default and the dam is
flagged ``height_estimated`` / ``volume_estimated``. The ``tailings_consequence`` layer gives,
per dam, the VF and Dmax ranges, who is inside the run-out, and an indicative consequence class
from the population at risk in GISTM's words (a populated place of unknown size counts as one
person) — indicative, not an engineering classification: the run-out here is a circle, not a
breach study, and GeoNames lists places of 500 people or more.
"""

from __future__ import annotations

from typing import Any, ClassVar

import geopandas as gpd
import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from geo_service.risk.base import FactorParams, FactorResult, RiskInputs, no_evidence, top_ids
from geo_service.risk.metric import nearest, pairs_within
from geo_service.risk.rivers import RiverNetwork
from geo_service.schemas import Kind

#: The two run-out models: ids, coefficients and sources, as recorded in the build metadata.
MODELS: dict[str, dict[str, Any]] = {
    "rico2008": {
        "released_volume": "VF = a·VT^b",
        "a": 0.354,
        "b": 1.01,
        "runout": "Dmax = c·(H·VF)^d",
        "c": 1.61,
        "d": 0.66,
        "reference": "Rico, Benito & Díez-Herrero 2008, Floods from tailings dam failures, "
        "J. Hazard. Mater. 154:79-87",
    },
    "concha_larrauri_lall2018": {
        "released_volume": "VF = a·VT^b",
        "a": 0.332,
        "b": 0.95,
        "runout": "Hf = H·(VF/VT)·VF; log10 Dmax = c + d·log10 Hf",
        "c": 0.477,
        "d": 0.545,
        "reference": "Concha Larrauri & Lall 2018, Tailings dams failures: updated statistical "
        "model for discharge volume and runout, Environments 5(2):28",
    },
}
UNITS = "VT, VF in Mm³ (10^6 m³); H in m; Dmax in km"

#: GISTM consequence classes by population at risk (upper bounds, inclusive).
GISTM_CLASSES = (
    (0, "Low"),
    (10, "Significant"),
    (100, "High"),
    (1000, "Very High"),
)
GISTM_TOP = "Extreme"
CLASS_NOTE = "indicative, not an engineering classification"

LAYER_COLUMNS = [
    "dam_id",
    "name",
    "country",
    "status",
    "construction_method",
    "height_m",
    "volume_m3",
    "height_estimated",
    "volume_estimated",
    "dam_weight",
    "vf_low_mm3",
    "vf_high_mm3",
    "dmax_low_km",
    "dmax_high_km",
    "dmax_used_km",
    "runout_models",
    "communities_in_runout",
    "population_in_runout",
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
    default_height_m: float = Field(
        13.0,
        gt=0.0,
        description="Height used where a dam's is unknown: the median declared height of the "
        "575 ANM tailings dams with a height in the bundled register (13.01 m).",
    )
    default_volume_m3: float = Field(
        492_000.0,
        gt=0.0,
        description="Impounded volume used where a dam's is unknown or 0: the median of the 557 "
        "positive declared volumes of ANM tailings dams in the bundled register (492,307 m³).",
    )
    status_weights: dict[str, float] = Field(
        default_factory=lambda: {
            "active": 1.0,
            "inactive": 0.9,
            "decommissioning": 0.8,
            "under construction": 0.5,
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
        description="Cap on the Dmax used for exposure, above the longest recorded run-out "
        "(Fundão 2015, ~650 km down the Rio Doce to the Atlantic); None for no cap.",
    )
    overland_max_km: float | None = Field(
        25.0,
        gt=0.0,
        description="Radius beyond which the run-out circle stops: the regressions give "
        "along-valley distances, and a flow that goes further is channelled by valleys and "
        "rivers (Brumadinho 2019 ran about 10 km over land, Fundão 2015 about 55 km down "
        "streams before the Rio Doce), so only the river pathway reaches past it. The weight "
        "inside the circle still uses the full Dmax. None for no limit.",
    )
    river_reach_km: float = Field(
        300.0,
        gt=0.0,
        description="How far down a river pollution is followed when that is beyond Dmax "
        "(the 2021 Catoca spill travelled hundreds of km down the Tshikapa and Kasai).",
    )
    river_snap_km: float = Field(
        5.0, gt=0.0, description="A dam this close to a mapped river spills into it."
    )
    river_corridor_km: float = Field(
        5.0, gt=0.0, description="A community this close to the river below a dam is on it."
    )
    saturation: float = Field(
        1.0,
        gt=0.0,
        description="κ in normalised = 1 − exp(−raw / κ): the raw value that maps to 0.63, "
        "one active, upstream-raised dam at the community's door.",
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


def runout(height_m: np.ndarray, volume_m3: np.ndarray) -> dict[str, np.ndarray]:
    """VF (Mm³) and Dmax (km) from both models, for heights in m and volumes in m³."""
    h = np.asarray(height_m, dtype="float64")
    vt = np.asarray(volume_m3, dtype="float64") / 1e6
    r, c = MODELS["rico2008"], MODELS["concha_larrauri_lall2018"]
    vf_r = r["a"] * vt ** r["b"]
    dmax_r = r["c"] * (h * vf_r) ** r["d"]
    vf_c = c["a"] * vt ** c["b"]
    hf = h * (vf_c / vt) * vf_c
    dmax_c = 10.0 ** (c["c"] + c["d"] * np.log10(hf))
    return {"vf_rico": vf_r, "dmax_rico": dmax_r, "vf_cll": vf_c, "dmax_cll": dmax_c}


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


def _known(values: pd.Series, positive: bool) -> np.ndarray:
    """The values as floats, NaN where unknown (missing, or not > 0 when ``positive``)."""
    x = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64")
    return np.where(x > 0, x, np.nan) if positive else x


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


class TailingsExposure:
    """Exposure of communities to tailings dam failures: run-out circles and rivers below."""

    name: ClassVar[str] = "tailings_exposure"
    evidence_kind: ClassVar[Kind] = Kind.tailings_dams
    Params: ClassVar[type[FactorParams]] = TailingsExposureParams

    def compute(self, inputs: RiskInputs, params: FactorParams) -> FactorResult:
        """Run-out and river exposure per community, and the ``tailings_consequence`` layer."""
        assert isinstance(params, TailingsExposureParams)
        communities = inputs.communities
        n = len(communities)
        covered = inputs.covered(self.evidence_kind)
        dams = inputs.tailings_dams
        metadata: dict[str, Any] = {
            "models": {k: dict(v) for k, v in MODELS.items()},
            "units": UNITS,
            "exposure_uses": "dmax_high (precautionary), capped at max_runout_km",
            "formula": "raw = Σ_dams max((1 − d/Dmax)·w, (1 − s/R)·w), w = status weight · "
            "construction-method weight, d = metres to the dam (≤ Dmax), s = metres along the "
            "river below it (≤ R = max(Dmax, river_reach_km)); "
            "normalised = 1 - exp(-raw/saturation)",
        }
        if dams is None or len(dams) == 0:
            nan_or_zero = np.where(covered, 0.0, np.nan)
            return FactorResult(
                name=self.name,
                raw=nan_or_zero.copy(),
                normalised=nan_or_zero.copy(),
                evidence=no_evidence(n),
                columns={
                    "dams_in_runout": nan_or_zero.copy(),
                    "dams_downstream": nan_or_zero.copy(),
                    "nearest_dam_km": np.full(n, np.nan),
                },
                layers={"tailings_consequence": _empty_layer()},
                metadata={**metadata, "dams": 0},
            )
        dams = dams.reset_index(drop=True)
        m = len(dams)
        c_geom = communities.geometry.to_numpy()
        d_geom = dams.geometry.to_numpy()

        # Per dam: inputs, both models, the Dmax used and the dam's weight.
        height = _known(_column(dams, "height_m"), positive=True)
        volume = _known(_column(dams, "volume_m3"), positive=True)
        h_est, v_est = np.isnan(height), np.isnan(volume)
        height = np.where(h_est, params.default_height_m, height)
        volume = np.where(v_est, params.default_volume_m3, volume)
        mod = runout(height, volume)
        vf_lo, vf_hi = (
            np.fmin(mod["vf_rico"], mod["vf_cll"]),
            np.fmax(mod["vf_rico"], mod["vf_cll"]),
        )
        dmax_lo = np.fmin(mod["dmax_rico"], mod["dmax_cll"])
        dmax_hi = np.fmax(mod["dmax_rico"], mod["dmax_cll"])
        cap = params.max_runout_km if params.max_runout_km is not None else np.inf
        dmax_used = np.minimum(dmax_hi, cap)
        dam_w = _lookup(_column(dams, "status"), params.status_weights) * _lookup(
            _column(dams, "construction_method"), params.construction_method_weights
        )

        # Run-out pathway: a circle no wider than a flow travels over land.
        overland = params.overland_max_km if params.overland_max_km is not None else np.inf
        rs, rt, rm = _runout_pairs(c_geom, d_geom, np.minimum(dmax_used, overland) * 1000.0)
        w_run = np.clip(1.0 - rm / (dmax_used[rt] * 1000.0), 0.0, 1.0) * dam_w[rt]

        # River pathway.
        reach_m = np.maximum(dmax_used, params.river_reach_km) * 1000.0
        river_name = np.full(m, None, dtype=object)
        river_snap_km = np.full(m, np.nan)
        river_path_km = np.full(m, np.nan)
        vs = vt = np.empty(0, dtype=np.int64)
        w_riv = np.empty(0)
        if inputs.rivers is not None and len(inputs.rivers):
            network = RiverNetwork.from_frame(inputs.rivers)
            edge, pos, snap_m = network.snap(d_geom, params.river_snap_km * 1000.0)
            reaches = network.reaches(edge, pos, reach_m, np.nan_to_num(snap_m))
            on = edge >= 0
            river_name[on] = network.edge_name[edge[on]]
            river_snap_km[on] = snap_m[on] / 1000.0
            river_path_km[on] = (
                np.bincount(reaches.source, reaches.hi_m - reaches.lo_m, minlength=m)[on] / 1000.0
            )
            rp = network.along(reaches, c_geom, params.river_corridor_km * 1000.0)
            vs, vt = rp.point, rp.source
            w_riv = np.clip(1.0 - rp.along_m / reach_m[vt], 0.0, 1.0) * dam_w[vt]
            metadata["river_network"] = network.summary
            metadata["dams_on_river"] = int(on.sum())
        else:
            metadata["river_network"] = None
            metadata["dams_on_river"] = 0

        # Per (community, dam): the stronger pathway.
        src, tgt, w = np.r_[rs, vs], np.r_[rt, vt], np.r_[w_run, w_riv]
        key = src * m + tgt
        order = np.argsort(key, kind="stable")
        key, w = key[order], w[order]
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else key
        pair_w = np.maximum.reduceat(w, starts) if len(key) else w
        pair_c, pair_d = key[starts] // m, key[starts] % m

        raw = np.bincount(pair_c, pair_w, minlength=n)
        raw = np.where(covered, raw, np.nan)
        normalised = 1.0 - np.exp(-raw / params.saturation)
        ids = dams["dam_id"].astype(str).to_numpy(dtype=object)
        keep = np.flatnonzero(covered[pair_c])
        keep = keep[_strongest(pair_c[keep], pair_w[keep], params.evidence_max)]
        evidence = top_ids(pair_c[keep], ids[pair_d[keep]], pair_w[keep], n, params.evidence_max)
        _, near_m = nearest(c_geom, d_geom, params.nearest_search_km * 1000.0)
        columns = {
            "dams_in_runout": np.where(covered, np.bincount(rs, minlength=n), np.nan),
            "dams_downstream": np.where(covered, np.bincount(vs, minlength=n), np.nan),
            "nearest_dam_km": np.where(covered, near_m / 1000.0, np.nan),
        }

        # Per dam: who is in the run-out, and an indicative class.
        pop = pd.to_numeric(_column(communities, "population"), errors="coerce")
        pop = pop.to_numpy(dtype="float64", na_value=np.nan)
        known = ~np.isnan(pop[rs])
        in_runout = np.bincount(rt, minlength=m)
        pop_runout = np.bincount(rt[known], pop[rs][known], minlength=m)
        unknown_pop = np.bincount(rt[~known], minlength=m)
        layer = gpd.GeoDataFrame(
            {
                "dam_id": ids,
                "name": _column(dams, "name").to_numpy(dtype=object),
                "country": _column(dams, "country").to_numpy(dtype=object),
                "status": _column(dams, "status").to_numpy(dtype=object),
                "construction_method": _column(dams, "construction_method").to_numpy(dtype=object),
                "height_m": height,
                "volume_m3": volume,
                "height_estimated": h_est,
                "volume_estimated": v_est,
                "dam_weight": dam_w,
                "vf_low_mm3": vf_lo,
                "vf_high_mm3": vf_hi,
                "dmax_low_km": dmax_lo,
                "dmax_high_km": dmax_hi,
                "dmax_used_km": dmax_used,
                "runout_models": _model_text(mod),
                "communities_in_runout": in_runout,
                "population_in_runout": pop_runout,
                "communities_unknown_population": unknown_pop,
                "communities_downstream": np.bincount(vt, minlength=m),
                "river_name": river_name,
                "river_snap_km": river_snap_km,
                "river_path_km": river_path_km,
                # A populated place of unknown size holds at least one person.
                "indicative_consequence_class": gistm_class(pop_runout + unknown_pop),
                "indicative_class_note": CLASS_NOTE,
                "reported_consequence": _column(dams, "reported_consequence").to_numpy(
                    dtype=object
                ),
                "source": _column(dams, "source").to_numpy(dtype=object),
                "source_id": _column(dams, "source_id").to_numpy(dtype=object),
            },
            geometry=dams.geometry.to_numpy(),
            crs="EPSG:4326",
        )
        exposed = covered & (raw > 0)
        metadata.update(
            {
                "dams": m,
                "dams_height_estimated": int(h_est.sum()),
                "dams_volume_estimated": int(v_est.sum()),
                "dams_dmax_capped": int((dmax_hi > cap).sum()),
                "communities_exposed": int(exposed.sum()),
                "communities_in_a_runout": int((columns["dams_in_runout"] > 0).sum()),
                "communities_downstream": int((columns["dams_downstream"] > 0).sum()),
                "indicative_classes": {
                    str(k): int(v)
                    for k, v in layer["indicative_consequence_class"].value_counts().items()
                },
            }
        )
        return FactorResult(
            name=self.name,
            raw=raw,
            normalised=normalised,
            evidence=evidence,
            columns=columns,
            layers={"tailings_consequence": layer},
            metadata=metadata,
        )


def _model_text(mod: dict[str, np.ndarray]) -> np.ndarray:
    """Model ids, coefficients and values per dam, as one readable string."""
    r, c = MODELS["rico2008"], MODELS["concha_larrauri_lall2018"]
    rico = np.char.add(
        f"rico2008 (VF={r['a']}·VT^{r['b']}, Dmax={r['c']}·(H·VF)^{r['d']}): VF ",
        np.char.mod("%.4g Mm³, Dmax ", mod["vf_rico"]),
    )
    rico = np.char.add(rico, np.char.mod("%.4g km", mod["dmax_rico"]))
    cll = np.char.add(
        f"; concha_larrauri_lall2018 (VF={c['a']}·VT^{c['b']}, Hf=H·(VF/VT)·VF, "
        f"log10 Dmax={c['c']}+{c['d']}·log10 Hf): VF ",
        np.char.mod("%.4g Mm³, Dmax ", mod["vf_cll"]),
    )
    cll = np.char.add(cll, np.char.mod("%.4g km", mod["dmax_cll"]))
    return np.char.add(rico, cll).astype(object)


def _empty_layer() -> gpd.GeoDataFrame:
    """The ``tailings_consequence`` layer with its columns and no rows."""
    return gpd.GeoDataFrame({c: [] for c in LAYER_COLUMNS}, geometry=[], crs="EPSG:4326")
