"""The run-out model against historic tailings-dam failures, leave-one-out.

Reads ``layers/sources/tailings_failures/tailings_failures.csv`` (cited facts, CC BY 4.0)
and, for every failure with a known height, stored volume and observed flow run-out (river
pollution kept apart), predicts the run-out from height and volume alone — as the model does
for a registered dam — with each law's spread fitted on all the *other* failures. Reports each failure's median and
80 % band against what happened, the share inside the band and the rank correlation; the
spread fitted on every failure is what ``risk.toml`` must hold. Figures:
``docs/methodology.md`` §2.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from geo_service.errors import SourceError
from geo_service.risk.runout import LAWS, mixture_quantile
from geo_service.settings import BuildSettings

#: The table shipped with the project, relative to the source catalog's folder.
FAILURES = Path("sources") / "tailings_failures" / "tailings_failures.csv"
REQUIRED = ("failure_id", "name", "country", "date", "height_m", "stored_volume_m3", "runout_km")
#: Share of observed run-outs the 80 % band must hold (the test and ``riskmap backtest``).
MIN_COVERAGE = 0.70
#: Rows whose ``notes`` start with this are not mine tailings (red mud, coal slurry).
NOT_TAILINGS = "KIND:"


@dataclass(frozen=True)
class Backtest:
    """Per failure: observed and predicted run-out, and the summary figures."""

    cases: pd.DataFrame
    #: Per law, the log10 spread fitted on every case (what the model uses).
    spread: dict[str, float]
    #: Per law, mean log10 error (observed − predicted): negative when the law over-predicts.
    bias: dict[str, float]
    #: Share of observed run-outs inside the 80 % band (leave-one-out), mixture and per law.
    coverage: dict[str, float]
    #: Spearman rank correlation of predicted medians and observed run-outs.
    rank_correlation: dict[str, float]

    @property
    def n(self) -> int:
        """Failures tested."""
        return len(self.cases)


def default_table() -> Path:
    """The shipped table, beside the catalog the settings name (``layers/sources.toml``)."""
    return BuildSettings().catalog.parent / FAILURES


def read_failures(path: Path | None = None) -> pd.DataFrame:
    """The failures table, checked: its columns, numbers and dates, naming row and field."""
    path = path or default_table()
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError) as exc:
        raise SourceError(f"cannot read the failures table: {exc}", path=path) from exc
    missing = [c for c in REQUIRED if c not in table]
    if missing:
        raise SourceError(f"missing column(s) {', '.join(missing)}", path=path)
    out = table.copy()
    for col in (
        "latitude",
        "longitude",
        "height_m",
        "stored_volume_m3",
        "released_volume_m3",
        "runout_km",
        "pollution_reach_km",
        "deaths",
    ):
        if col not in out:
            continue
        values = pd.to_numeric(out[col].replace("", np.nan), errors="coerce")
        bad = out[col].ne("") & values.isna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise SourceError(
                f"line {i + 2}, field {col!r}: expected a number, got {out[col].iloc[i]!r}",
                path=path,
            )
        out[col] = values
    dates = pd.to_datetime(out["date"], format="%Y-%m-%d", errors="coerce")
    if dates.isna().any():
        i = int(np.flatnonzero(dates.isna().to_numpy())[0])
        raise SourceError(
            f"line {i + 2}, field 'date': expected YYYY-MM-DD, got {out['date'].iloc[i]!r}",
            path=path,
        )
    out["date"] = dates
    return out


def cases(table: pd.DataFrame) -> pd.DataFrame:
    """The failures a backtest can use: mine tailings with H, VT and a flow run-out."""
    ok = table[["height_m", "stored_volume_m3", "runout_km"]].gt(0).all(axis=1)
    tailings = ~table.get("notes", pd.Series("", index=table.index)).str.startswith(NOT_TAILINGS)
    return table[ok & tailings].reset_index(drop=True)


def run_backtest(
    table: pd.DataFrame | None = None, laws: tuple[str, ...] = tuple(LAWS)
) -> Backtest:
    """Leave-one-out backtest of the run-out distribution on the failures table."""
    t = cases(read_failures() if table is None else table)
    if len(t) < 3:
        raise ValueError(f"a backtest needs at least 3 complete failures, got {len(t)}")
    lh = np.log10(t["height_m"].to_numpy(dtype="float64"))
    lv = np.log10(t["stored_volume_m3"].to_numpy(dtype="float64") / 1e6)
    observed = np.log10(t["runout_km"].to_numpy(dtype="float64"))
    mu = np.column_stack([LAWS[k].log10_median_km(lh, lv) for k in laws])
    resid = observed[:, None] - mu
    n = len(t)
    # Leave one out: each case's spread from the squared errors of every other case.
    sq = resid**2
    loo = np.sqrt((sq.sum(axis=0)[None, :] - sq) / (n - 1))
    spread = {k: float(np.sqrt(sq[:, i].mean())) for i, k in enumerate(laws)}
    bias = {k: float(resid[:, i].mean()) for i, k in enumerate(laws)}
    lo, mid, hi = (mixture_quantile(mu, loo, p) for p in (0.1, 0.5, 0.9))
    out = t[
        ["failure_id", "name", "country", "date", "height_m", "stored_volume_m3", "runout_km"]
    ].copy()
    out["date"] = out["date"].dt.date.astype(str)
    for i, k in enumerate(laws):
        out[f"{k}_p50_km"] = 10.0 ** mu[:, i]
        z = 1.2815515655446004 * loo[:, i]
        out[f"{k}_inside"] = np.abs(resid[:, i]) <= z
    out["p10_km"], out["p50_km"], out["p90_km"] = 10.0**lo, 10.0**mid, 10.0**hi
    out["inside"] = (observed >= lo) & (observed <= hi)
    out["error_factor"] = 10.0 ** np.abs(observed - mid)
    coverage = {"mixture": float(out["inside"].mean())} | {
        k: float(out[f"{k}_inside"].mean()) for k in laws
    }
    rank = {"mixture": float(spearmanr(mid, observed)[0])} | {
        k: float(spearmanr(mu[:, i], observed)[0]) for i, k in enumerate(laws)
    }
    return Backtest(out, spread, bias, coverage, rank)


def rounded(spread: dict[str, float], digits: int = 2) -> dict[str, float]:
    """Spreads as ``risk.toml`` records them."""
    return {k: round(v, digits) for k, v in spread.items()}


def markdown(result: Backtest) -> str:
    """The per-failure table and the summary, as ``docs/methodology.md`` shows them."""
    lines = [
        "| failure | date | H (m) | VT (Mm³) | observed (km) | Rico 2008 median | "
        "Concha Larrauri & Lall median | model median | 80 % band | inside |",
        "|---|---|--:|--:|--:|--:|--:|--:|---|---|",
    ]
    for r in result.cases.itertuples():
        lines.append(
            f"| {r.failure_id} | {r.date} | {r.height_m:g} | {r.stored_volume_m3 / 1e6:.3g} | "
            f"{r.runout_km:g} | {r.rico2008_p50_km:.3g} | "
            f"{r.concha_larrauri_lall2018_p50_km:.3g} | {r.p50_km:.3g} | "
            f"{r.p10_km:.2g} – {r.p90_km:.3g} | {'yes' if r.inside else '**no**'} |"
        )
    inside = int(result.cases["inside"].sum())
    lines.append("")
    lines.append(
        f"Inside the 80 % band: **{inside} of {result.n}** "
        f"({result.coverage['mixture']:.0%}); rank correlation of predicted medians and "
        f"observed run-outs (Spearman): **{result.rank_correlation['mixture']:.2f}**. "
        + "; ".join(
            f"{law}: log10 spread {result.spread[law]:.3f}, mean log10 error "
            f"{result.bias[law]:+.2f}, {result.coverage[law]:.0%} inside its own band"
            for law in result.spread
        )
        + "."
    )
    return "\n".join(lines)
