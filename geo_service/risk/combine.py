"""Factors → one score per community, 0–100, with every factor's share of it.

score = 100 · Σ w_f·n_f / Σ w_f over the factors that have evidence coverage where the
community is (n_f the normalised value, w_f the factor's weight). A factor without coverage is
"no data", never zero: it is left out of both sums, and the row says which factors were
missing, so a class computed from one factor of three carries that caveat. Each factor's
contribution (100 · w_f·n_f / Σ w_f) is kept beside its raw and normalised values and the ids
of its evidence; the contributions add up to the score.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_service.risk.base import FactorResult
from geo_service.risk.params import RiskParams

CLASSES = ("low", "medium", "high", "very high", "no data")


def combine(
    communities: gpd.GeoDataFrame, results: list[FactorResult], params: RiskParams
) -> gpd.GeoDataFrame:
    """The ``community_risk`` layer: identity, score, class, caveats, and every factor's parts."""
    n = len(communities)
    weights = {r.name: params.factors[r.name].weight for r in results}
    available = (
        np.column_stack([~np.isnan(r.normalised) for r in results])
        if results
        else np.zeros((n, 0), bool)
    )
    w = np.array([weights[r.name] for r in results], dtype="float64")
    denom = available.astype("float64") @ w if results else np.zeros(n)
    with np.errstate(invalid="ignore", divide="ignore"):
        parts = {
            r.name: np.where(
                available[:, i], 100.0 * w[i] * np.nan_to_num(r.normalised) / denom, np.nan
            )
            for i, r in enumerate(results)
        }
    score = (
        np.where(denom > 0, np.nansum(np.column_stack(list(parts.values())), axis=1), np.nan)
        if results
        else np.full(n, np.nan)
    )

    out = communities[
        [
            "community_id",
            "name",
            "country",
            "admin1",
            "population",
            "source",
            "source_id",
            "sensitivity",
        ]
    ].copy()
    out["score"] = np.round(score, 3)
    out["risk_class"] = _classes(score, params)
    names = np.array([r.name for r in results], dtype=object)
    have, missing, caveat = _availability(available, names)
    out["factors_available"] = have
    out["factors_missing"] = missing
    out["score_caveat"] = caveat
    for r in results:
        out[f"{r.name}_raw"] = r.raw
        out[f"{r.name}_normalised"] = r.normalised
        out[f"{r.name}_contribution"] = np.round(parts[r.name], 3)
        out[f"{r.name}_evidence"] = pd.Series(
            r.evidence.to_pylist(), index=out.index, dtype="object"
        )
        for col, values in r.columns.items():
            out[f"{r.name}_{col}"] = values
    return gpd.GeoDataFrame(out, geometry=communities.geometry.to_numpy(), crs="EPSG:4326")


def _classes(score: np.ndarray, params: RiskParams) -> np.ndarray:
    c = params.classes
    bins = np.digitize(np.nan_to_num(score, nan=-1.0), [c.medium, c.high, c.very_high])
    labels = np.array(CLASSES[:4], dtype=object)[bins]
    return np.where(np.isnan(score), "no data", labels)


def _availability(available: np.ndarray, names: np.ndarray) -> tuple[np.ndarray, ...]:
    """Factors present, factors missing and a caveat sentence, per row.

    Computed once per distinct pattern of coverage (at most 2^factors of them) and spread
    to the rows, so a million communities cost one ``np.unique``.
    """
    n = len(available)
    if available.shape[1] == 0:
        empty = np.empty(n, dtype=object)
        empty[:] = [[] for _ in range(n)]
        return empty, empty, np.full(n, "no factor has evidence here", dtype=object)
    patterns, inverse = np.unique(available, axis=0, return_inverse=True)
    total = len(names)
    have_lists = np.empty(len(patterns), dtype=object)
    missing_lists = np.empty(len(patterns), dtype=object)
    sentences = np.empty(len(patterns), dtype=object)
    for i, row in enumerate(patterns):
        have_lists[i] = [str(x) for x in names[row]]
        missing_lists[i] = [str(x) for x in names[~row]]
        k = int(row.sum())
        if k == total:
            sentences[i] = ""
        elif k == 0:
            sentences[i] = "no data for any factor here: no score"
        else:
            sentences[i] = (
                f"based on {k} of {total} factors; no data for {', '.join(missing_lists[i])} "
                "here (absence of evidence is not absence of risk)"
            )
    inverse = inverse.ravel()
    return have_lists[inverse], missing_lists[inverse], sentences[inverse]
