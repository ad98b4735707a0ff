"""The run-out backtest on the shipped table of historic failures: rerun, and kept honest."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from typer.testing import CliRunner

from geo_service.cli import app
from geo_service.errors import SourceError
from geo_service.risk.backtest import (
    MIN_COVERAGE,
    cases,
    markdown,
    read_failures,
    rounded,
    run_backtest,
)
from geo_service.risk.params import load_risk_params
from tests.conftest import LAYERS, ROOT, SOURCES

FAILURES = SOURCES / "tailings_failures" / "tailings_failures.csv"

runner = CliRunner()


@pytest.fixture(scope="module")
def result():
    return run_backtest()


def test_the_table_is_cited_and_big_enough() -> None:
    table = read_failures()
    assert len(table) >= 40 and table["failure_id"].is_unique
    # Every row cites a public source; pollution reach is kept apart from the flow's run-out.
    assert table["sources"].str.len().gt(20).all()
    assert table.loc[table["failure_id"] == "fundao_2015", "runout_km"].iloc[0] < 100
    assert table.loc[table["failure_id"] == "fundao_2015", "pollution_reach_km"].iloc[0] > 600
    assert len(cases(table)) >= 20
    readme = (FAILURES.parent / "README.md").read_text(encoding="utf-8")
    assert "CC BY 4.0" in readme and "cites its sources" in readme


def test_the_band_holds_most_observed_runouts(result) -> None:
    """The share of observed run-outs inside their leave-one-out 80 % band: the aim is 70 %."""
    assert result.n >= 20
    assert result.coverage["mixture"] >= MIN_COVERAGE
    assert result.rank_correlation["mixture"] > 0.3
    # Both laws over-predict on these failures (a precautionary error, stated in the docs).
    assert all(b < 0 for b in result.bias.values())


def test_each_band_is_fitted_without_its_own_failure(result) -> None:
    """Leave-one-out, written out for one case: the spreads from the other failures' errors."""
    table = cases(read_failures())
    i = int(np.flatnonzero(table["failure_id"] == "brumadinho_2019")[0])
    h, vt = table["height_m"].to_numpy(), table["stored_volume_m3"].to_numpy() / 1e6
    observed = np.log10(table["runout_km"].to_numpy())
    vf_r = 0.354 * vt**1.01
    rico = np.log10(1.61 * (h * vf_r) ** 0.66)
    vf_c = 0.332 * vt**0.95
    cll = 0.477 + 0.545 * np.log10(h * (vf_c / vt) * vf_c)
    others = np.arange(len(table)) != i
    s_r = math.sqrt(np.mean((observed - rico)[others] ** 2))
    s_c = math.sqrt(np.mean((observed - cll)[others] ** 2))
    row = result.cases.iloc[i]
    for q, p in (("p10_km", 0.9), ("p90_km", 0.1)):
        x = math.log10(row[q])
        chance = 0.5 * (norm.sf((x - rico[i]) / s_r) + norm.sf((x - cll[i]) / s_c))
        assert chance == pytest.approx(p, abs=1e-6)
    assert row["runout_km"] == 7.0 and row["inside"]


def test_risk_toml_holds_the_fitted_spreads(result) -> None:
    used = load_risk_params(LAYERS / "risk.toml").factors["tailings_exposure"]
    assert dict(used.runout_spread_log10) == rounded(result.spread)


def test_the_methodology_shows_this_very_backtest(result) -> None:
    doc = (ROOT / "docs" / "methodology.md").read_text(encoding="utf-8")
    assert markdown(result) in doc


def test_riskmap_backtest(tmp_path) -> None:
    r = runner.invoke(app, ["backtest", "--csv", str(tmp_path / "b.csv")])
    assert r.exit_code == 0, r.output
    assert "Run-out backtest: 37 tailings failures" in r.output
    assert "inside the 80 % band 78%" in r.output
    written = pd.read_csv(tmp_path / "b.csv")
    assert len(written) >= 20 and "brumadinho_2019" in set(written["failure_id"])
    # A risk.toml whose spreads are not the table's fails.
    toml = tmp_path / "risk.toml"
    toml.write_text("[tailings_exposure.runout_spread_log10]\nrico2008 = 0.5\n")
    r = runner.invoke(app, ["backtest", "--risk", str(toml)])
    assert r.exit_code == 1 and "not the fitted" in r.output


def test_a_bad_table_names_the_line_and_field(tmp_path) -> None:
    bad = tmp_path / "failures.csv"
    lines = FAILURES.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    row = pd.read_csv(FAILURES, dtype=str, keep_default_na=False).iloc[[0, 1]].copy()
    row.iloc[1, header.index("height_m")] = "tall"
    row.to_csv(bad, index=False)
    with pytest.raises(SourceError, match=r"line 3, field 'height_m': expected a number"):
        read_failures(bad)
    r = runner.invoke(app, ["backtest", "--table", str(bad)])
    assert r.exit_code == 2 and "line 3" in r.output
