"""Factors → one score per community, 0–100, with every factor's share of it and a confidence.

score = 100 · (1 − Π_f (1 − n_f)^w_f) over the factors that have data where the community is
(n_f the normalised value, w_f the factor's weight): a probabilistic OR, so one strong factor
is never averaged away by weak ones, more or stronger evidence never lowers the score, and a
factor with no data is left out of the product — "no data", never zero — and listed. Each
factor's contribution is its Shapley value in that OR (its average marginal effect over every
order the factors could be added in): non-negative, 0 for a factor at 0, and adding up to the
score. ``aggregate`` is the one implementation, also used by the risk surface.
Derivation and references: ``docs/methodology.md`` §4.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_service.risk.base import FactorResult
from geo_service.risk.confidence import confidence
from geo_service.risk.params import RiskParams

#: Decimals of a published score and contribution: the class is that of the published value.
DECIMALS = 1


def aggregate(normalised: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """1 − Π (1 − n_f)^w_f over the factors with data (n_f not NaN), NaN where none has.

    Elementwise on arrays of any shape and float dtype (the surface passes float32 grids of
    millions of cells); values are clipped to 0–1. A factor at 1 gives 1, whatever the others.
    """
    if not normalised:
        raise ValueError("nothing to aggregate")
    dtype = np.result_type(*normalised, np.float32)
    shape = np.shape(normalised[0])
    rest = np.ones(shape, dtype=dtype)  # Π (1 − n)^w: the chance that no factor "fires"
    have = np.zeros(shape, dtype=bool)
    for n, w in zip(normalised, weights, strict=True):
        n = np.asarray(n, dtype=dtype)
        ok = ~np.isnan(n)
        have |= ok
        if w == 0:
            continue
        spare = np.subtract(dtype.type(1.0), n)  # NaN stays NaN …
        np.clip(spare, 0.0, 1.0, out=spare)
        spare[~ok] = 1.0  # … and counts as nothing: no data is left out
        if w != 1:
            np.power(spare, dtype.type(w), out=spare)
        rest *= spare
    out = np.subtract(dtype.type(1.0), rest, out=rest)
    out[~have] = np.nan
    return out


def shapley_parts(normalised: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """Each factor's Shapley value in ``aggregate`` (rows × factors, NaN where no data).

    The game's value of a set T of factors is 1 − exp(−Σ_{f∈T} L_f), L_f = −w_f·ln(1 − n_f);
    a factor without data is not a player. 2^k subsets for k factors (k is 3 today).
    """
    k = len(normalised)
    values = np.column_stack([np.asarray(n, dtype="float64") for n in normalised])
    have = ~np.isnan(values)
    with np.errstate(divide="ignore", invalid="ignore"):
        loss = -np.log1p(-np.clip(np.nan_to_num(values), 0.0, 1.0)) * np.asarray(weights)
    loss = np.where(have, np.nan_to_num(loss, nan=0.0, posinf=np.inf), 0.0)
    value = {}
    for size in range(k + 1):
        for subset in itertools.combinations(range(k), size):
            total = loss[:, list(subset)].sum(axis=1) if subset else np.zeros(len(values))
            value[subset] = -np.expm1(-total)
    parts = np.zeros_like(values)
    for f in range(k):
        others = [g for g in range(k) if g != f]
        for size in range(k):
            share = math.factorial(size) * math.factorial(k - size - 1) / math.factorial(k)
            for subset in itertools.combinations(others, size):
                with_f = tuple(sorted((*subset, f)))
                parts[:, f] += share * (value[with_f] - value[subset])
    return np.where(have, parts, np.nan)


def round_parts(parts: np.ndarray, total: np.ndarray, decimals: int = DECIMALS) -> np.ndarray:
    """``parts`` (rows × factors) rounded so each row adds up to ``total`` at ``decimals``.

    Largest remainders: every part is rounded down, then the parts with the largest remainders
    get one more unit until the row's total is reached, so the published contributions add up
    exactly to the published score. NaN parts stay NaN.
    """
    unit = 10.0**decimals
    scaled = np.nan_to_num(parts, nan=0.0) * unit
    floor = np.floor(scaled + 1e-9)
    remainder = np.where(np.isnan(parts), -1.0, scaled - floor)
    target = np.round(np.nan_to_num(total, nan=0.0) * unit)
    deficit = np.clip(target - floor.sum(axis=1), 0, parts.shape[1]).astype(np.int64)
    rank = np.argsort(np.argsort(-remainder, axis=1, kind="stable"), axis=1, kind="stable")
    floor += rank < deficit[:, None]
    return np.where(np.isnan(parts), np.nan, floor / unit)


def published_score(normalised: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """The published score (0–100, ``DECIMALS``; NaN where no factor has data)."""
    return np.round(100.0 * aggregate(normalised, weights), DECIMALS) + 0.0  # no −0.0


def scores(results: list[FactorResult], params: RiskParams, n: int) -> np.ndarray:
    """The published score of each of ``n`` communities, from the factors' ``results``."""
    if not results:
        return np.full(n, np.nan)
    normalised = [np.asarray(r.normalised, dtype="float64") for r in results]
    return published_score(normalised, [params.factors[r.name].weight for r in results])


def combine(
    communities: gpd.GeoDataFrame, results: list[FactorResult], params: RiskParams
) -> gpd.GeoDataFrame:
    """The ``community_risk`` layer: identity, score, class, confidence and every factor's parts."""
    n = len(communities)
    names = np.array([r.name for r in results], dtype=object)
    weights = [params.factors[r.name].weight for r in results]
    if results:
        normalised = [np.asarray(r.normalised, dtype="float64") for r in results]
        score = published_score(normalised, weights)
        parts = round_parts(100.0 * shapley_parts(normalised, weights), score)
        available = np.column_stack([~np.isnan(v) for v in normalised])
    else:
        score = np.full(n, np.nan)
        parts = np.zeros((n, 0))
        available = np.zeros((n, 0), bool)

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
    out["score"] = score
    out["risk_class"] = params.classes.of(score)
    out["confidence"], out["confidence_reasons"] = confidence(
        score, parts, available, [r.precision for r in results], weights, params.classes
    )
    have, missing, caveat = _availability(available, names)
    out["factors_available"] = have
    out["factors_missing"] = missing
    out["score_caveat"] = caveat
    for i, r in enumerate(results):
        out[f"{r.name}_raw"] = r.raw
        out[f"{r.name}_normalised"] = r.normalised
        out[f"{r.name}_contribution"] = parts[:, i]
        out[f"{r.name}_evidence"] = pd.Series(
            r.evidence.to_pylist(), index=out.index, dtype="object"
        )
        for col, values in r.columns.items():
            out[f"{r.name}_{col}"] = values
    return gpd.GeoDataFrame(out, geometry=communities.geometry.to_numpy(), crs="EPSG:4326")


def _availability(available: np.ndarray, names: np.ndarray) -> tuple[np.ndarray, ...]:
    """Factors present, factors missing and a caveat sentence, per row.

    Computed once per distinct pattern of coverage (at most 2^factors of them) and spread
    to the rows, so a million communities cost one ``np.unique`` of integers.
    """
    n = len(available)
    if available.shape[1] == 0:
        empty = np.empty(n, dtype=object)
        empty[:] = [[] for _ in range(n)]
        return empty, empty, np.full(n, "no factor has evidence here", dtype=object)
    bits = 1 << np.arange(available.shape[1], dtype=np.int64)
    codes, inverse = np.unique(available.astype(np.int64) @ bits, return_inverse=True)
    patterns = (codes[:, None] & bits) > 0
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
                "here (absence of evidence is not absence of risk: the score can only rise "
                "when they have data)"
            )
    inverse = inverse.ravel()
    return have_lists[inverse], missing_lists[inverse], sentences[inverse]
