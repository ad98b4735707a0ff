"""How far a score can be trusted: high, medium or low, and the reasons that set it.

Two questions, and the answer is the lower of the two (rules and examples:
``docs/methodology.md`` §4a):

* what the score rests on — the precision of the strongest evidence of the factor that
  contributes most: a mapped boundary, a site located on imagery, an exactly placed incident or
  a dam with measured height and volume is *precise* (high); an estimated site, an incident
  placed near a place or to a district, or a dam whose height or volume was estimated is
  *approximate* or *estimated* (medium); a point standing for a whole province or country is a
  *stand-in* (low);
* what was looked at — the share of the factors' weight with data there: all (high); not all
  (medium when at least two thirds, or when the score is already high or very high, since the
  missing factors could only raise it; low otherwise).

A score of 0 rests on no evidence, so only coverage speaks; a community with no score has no
confidence (null).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from geo_service.risk.params import Classes

LEVELS = ("low", "medium", "high")
#: Precision words a factor gives its strongest evidence, and the confidence each allows.
PRECISION_LEVEL = {"precise": 2, "approximate": 1, "estimated": 1, "stand_in": 0}
#: Why a confidence is below high (codes, translated by the maps).
REASONS = {
    "approximate": "approximate_location",
    "estimated": "estimated_dam",
    "stand_in": "province_stand_in",
}
MISSING = "factors_missing"
#: Share of the factors' weight with data from which coverage alone allows "medium".
MEDIUM_SHARE = 2.0 / 3.0


def confidence(
    score: np.ndarray,
    parts: np.ndarray,
    available: np.ndarray,
    precisions: Sequence[np.ndarray | None],
    weights: Sequence[float],
    classes: Classes,
) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the confidence word (None where there is no score) and its reason codes."""
    n = len(score)
    level = np.full(n, 2, dtype=np.int64)
    reasons: list[list[str]] = [[] for _ in range(n)]
    k = parts.shape[1]
    if k:
        # What the score rests on: the strongest evidence of the largest contribution.
        main = np.argmax(np.nan_to_num(parts, nan=-1.0), axis=1)
        rests = np.nan_to_num(parts, nan=0.0).max(axis=1) > 0
        words = np.full(n, None, dtype=object)
        for f, prec in enumerate(precisions):
            if prec is None:
                continue
            pick = rests & (main == f)
            words[pick] = np.asarray(prec, dtype=object)[pick]
        for word, allowed in PRECISION_LEVEL.items():
            hit = words == word
            if allowed < 2:
                level[hit] = np.minimum(level[hit], allowed)
                for i in np.flatnonzero(hit):
                    reasons[i].append(REASONS[word])
        # What was looked at.
        w = np.asarray(weights, dtype="float64")
        share = (available * w).sum(axis=1) / (w.sum() or 1.0)
        partial = share < 1.0 - 1e-9
        high_class = np.nan_to_num(score, nan=-1.0) >= classes.high
        cap = np.where(share >= MEDIUM_SHARE - 1e-9, 1, np.where(high_class, 1, 0))
        level = np.where(partial, np.minimum(level, cap), level)
        for i in np.flatnonzero(partial):
            reasons[i].append(MISSING)
    labels = np.array(LEVELS, dtype=object)[level]
    labels[np.isnan(score)] = None
    out = np.empty(n, dtype=object)
    out[:] = [r if s == s else [] for r, s in zip(reasons, score, strict=True)]
    return labels, out
