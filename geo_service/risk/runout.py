"""How far a tailings flow may run if a dam fails, as a probability rather than a line.

Two empirical laws give a median run-out from the dam's height H (m) and stored volume VT
(Mm³), each as log10 Dmax = a + b_H·log10 H + b_V·log10 VT:

* ``rico2008`` — Rico et al. 2008: VF = 0.354·VT^1.01, Dmax = 1.61·(H·VF)^0.66;
* ``concha_larrauri_lall2018`` — Concha Larrauri & Lall 2018: VF = 0.332·VT^0.95,
  Hf = H·(VF/VT)·VF, log10 Dmax = 0.477 + 0.545·log10 Hf.

Around each median the observed run-outs of historic failures scatter log-normally; the spread
(log10 standard deviation per law) is fitted on ``layers/sources/tailings_failures/tailings_failures.csv``
(``backtest.py``, leave-one-out) and kept in ``risk.toml``. Where H or VT is unknown it is
drawn from the register's own distribution (log-normal, conditional on the other value when
that one is known), which widens the spread. The chance that a flow reaches distance d is the
mean over the two laws of P(run-out ≥ d); quantiles come from that mixture.
Provenance of the coefficients and the fit: ``docs/methodology.md`` §2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.special import ndtr, ndtri


@dataclass(frozen=True)
class Law:
    """One run-out regression: released volume, and log10 Dmax linear in log10 H and log10 VT."""

    id: str
    vf_a: float
    vf_b: float
    intercept: float
    slope_height: float
    slope_volume: float
    formula: str
    reference: str

    def released_mm3(self, volume_mm3: np.ndarray) -> np.ndarray:
        """VF (Mm³) from VT (Mm³)."""
        return self.vf_a * np.asarray(volume_mm3, dtype="float64") ** self.vf_b

    def log10_median_km(self, log10_height: np.ndarray, log10_volume_mm3: np.ndarray) -> np.ndarray:
        """log10 of the law's Dmax (km)."""
        return (
            self.intercept
            + self.slope_height * np.asarray(log10_height)
            + self.slope_volume * np.asarray(log10_volume_mm3)
        )

    def record(self) -> dict[str, Any]:
        """What the build metadata says of the law."""
        return {
            "formula": self.formula,
            "log10_dmax_km": f"{self.intercept:.4f} + {self.slope_height:.4f}·log10 H + "
            f"{self.slope_volume:.4f}·log10 VT",
            "reference": self.reference,
        }


def _rico() -> Law:
    a, b, c, d = 0.354, 1.01, 1.61, 0.66
    return Law(
        id="rico2008",
        vf_a=a,
        vf_b=b,
        intercept=math.log10(c) + d * math.log10(a),
        slope_height=d,
        slope_volume=d * b,
        formula=f"VF = {a}·VT^{b}; Dmax = {c}·(H·VF)^{d}",
        reference="Rico, Benito & Díez-Herrero 2008, Floods from tailings dam failures, "
        "J. Hazard. Mater. 154:79-87",
    )


def _concha_larrauri_lall() -> Law:
    a, b, c, d = 0.332, 0.95, 0.477, 0.545
    return Law(
        id="concha_larrauri_lall2018",
        vf_a=a,
        vf_b=b,
        intercept=c + d * 2.0 * math.log10(a),
        slope_height=d,
        slope_volume=d * (2.0 * b - 1.0),
        formula=f"VF = {a}·VT^{b}; Hf = H·(VF/VT)·VF; log10 Dmax = {c} + {d}·log10 Hf",
        reference="Concha Larrauri & Lall 2018, Tailings dams failures: updated statistical "
        "model for discharge volume and runout, Environments 5(2):28",
    )


LAWS: dict[str, Law] = {law.id: law for law in (_rico(), _concha_larrauri_lall())}
UNITS = "H in m; VT, VF in Mm³ (10^6 m³); Dmax in km"
PROVENANCE = (
    "Coefficients as they appear in public code and secondary sources, not read from the papers: "
    "the released-volume laws (0.354·VT^1.01, 0.332·VT^0.95) as the open-source FLO-2D QGIS "
    "plugin's breach hydrograph tool implements them; the two run-out laws as quoted in the "
    "literature. Their error is measured, whatever their provenance, by the backtest on "
    "historic failures that fits the spread (docs/methodology.md §2)."
)
#: z of the 10th and 90th percentiles of a normal distribution.
Z90 = float(ndtri(0.9))


class RegisterDistribution(BaseModel):
    """Heights and stored volumes of a dam register, as a bivariate log-normal (log10)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    log10_height_mean: float = Field(1.1248, description="Mean of log10 H (m).")
    log10_height_sd: float = Field(0.4020, gt=0.0, description="SD of log10 H.")
    log10_volume_mean: float = Field(5.6174, description="Mean of log10 VT (m³).")
    log10_volume_sd: float = Field(1.1588, gt=0.0, description="SD of log10 VT.")
    correlation: float = Field(
        0.7663, ge=-1.0, le=1.0, description="Correlation of log10 H and log10 VT."
    )

    def fill(
        self, log10_h: np.ndarray, log10_v: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Expected log10 H and log10 VT (m³) where unknown (NaN), with their variances and
        covariance given what is known: the conditional normal of the register."""
        h, v = np.asarray(log10_h, dtype="float64"), np.asarray(log10_v, dtype="float64")
        mh, sh, mv, sv, r = (
            self.log10_height_mean,
            self.log10_height_sd,
            self.log10_volume_mean,
            self.log10_volume_sd,
            self.correlation,
        )
        hu, vu = np.isnan(h), np.isnan(v)
        eh = np.where(hu, np.where(vu, mh, mh + r * sh / sv * (v - mv)), h)
        ev = np.where(vu, np.where(hu, mv, mv + r * sv / sh * (h - mh)), v)
        var_h = np.where(hu, np.where(vu, sh**2, sh**2 * (1 - r**2)), 0.0)
        var_v = np.where(vu, np.where(hu, sv**2, sv**2 * (1 - r**2)), 0.0)
        cov = np.where(hu & vu, r * sh * sv, 0.0)
        return eh, ev, var_h, var_v, cov


@dataclass(frozen=True)
class Runout:
    """Per dam, each law's log10 median run-out (km) and spread, and the mixture's quantiles."""

    #: (dams, laws) log10 median Dmax in km, and its log10 standard deviation.
    mu: np.ndarray
    sigma: np.ndarray
    laws: tuple[str, ...]
    #: Mixture quantiles (km), before any cap.
    p10_km: np.ndarray
    p50_km: np.ndarray
    p90_km: np.ndarray

    @classmethod
    def of(
        cls,
        height_m: np.ndarray,
        volume_m3: np.ndarray,
        spread: dict[str, float],
        register: RegisterDistribution,
    ) -> Runout:
        """The run-out distribution of dams of known or unknown (NaN) height and volume."""
        h = np.asarray(height_m, dtype="float64")
        v = np.asarray(volume_m3, dtype="float64")
        with np.errstate(divide="ignore", invalid="ignore"):
            lh = np.where(h > 0, np.log10(h), np.nan)
            lv = np.where(v > 0, np.log10(v), np.nan)
        eh, ev, var_h, var_v, cov = register.fill(lh, lv)
        ev_mm3 = ev - 6.0
        laws = tuple(spread)
        mu = np.column_stack([LAWS[k].log10_median_km(eh, ev_mm3) for k in laws])
        extra = np.column_stack(
            [
                LAWS[k].slope_height ** 2 * var_h
                + LAWS[k].slope_volume ** 2 * var_v
                + 2 * LAWS[k].slope_height * LAWS[k].slope_volume * cov
                for k in laws
            ]
        )
        sigma = np.sqrt(np.array([spread[k] for k in laws]) ** 2 + extra)
        q = [mixture_quantile(mu, sigma, p) for p in (0.1, 0.5, 0.9)]
        return cls(mu, sigma, laws, *(10.0**x for x in q))

    def exceedance(self, km: np.ndarray, dam: np.ndarray) -> np.ndarray:
        """P(run-out ≥ km) for each (distance, dam index): the mean over the laws."""
        with np.errstate(divide="ignore"):
            lk = np.log10(np.maximum(np.asarray(km, dtype="float64"), 0.0))
        z = (lk[:, None] - self.mu[dam]) / self.sigma[dam]
        return ndtr(-z).mean(axis=1)

    def median_km(self, law: str) -> np.ndarray:
        """One law's median run-out (km) per dam."""
        return 10.0 ** self.mu[:, self.laws.index(law)]


def mixture_quantile(mu: np.ndarray, sigma: np.ndarray, p: float) -> np.ndarray:
    """log10 x with P(log10 run-out ≤ x) = p under the equal mixture of the laws (bisection)."""
    lo = (mu - 6.0 * sigma).min(axis=1)
    hi = (mu + 6.0 * sigma).max(axis=1)
    for _ in range(60):
        mid = (lo + hi) / 2.0
        cdf = ndtr((mid[:, None] - mu) / sigma).mean(axis=1)
        below = cdf < p
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return (lo + hi) / 2.0


def round_significant(x: np.ndarray, digits: int = 2) -> np.ndarray:
    """Values rounded to ``digits`` significant figures (0 and NaN kept)."""
    x = np.asarray(x, dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = np.where(x > 0, np.floor(np.log10(np.abs(x))), 0.0)
    scale = 10.0 ** (digits - 1 - mag)
    return np.where(np.isfinite(x) & (x != 0), np.round(x * scale) / scale, x)
