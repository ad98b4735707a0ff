"""Combining factors, the public hex layer, concession surroundings, and risk.toml."""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from geo_service.errors import CatalogError
from geo_service.risk.base import CoverageArea, FactorResult, top_ids
from geo_service.risk.combine import aggregate, combine, round_parts
from geo_service.risk.concession_risk import ConcessionRiskParams, concession_risk
from geo_service.risk.generalise import risk_hex
from geo_service.risk.params import HexParams, load_risk_params
from geo_service.schemas import Kind


def _communities(n: int, lon0: float = 21.98, lat0: float = 6.54) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "community_id": [f"c{i}" for i in range(n)],
            "name": [f"place {i}" for i in range(n)],
            "country": ["CAF"] * n,
            "admin1": [None] * n,
            "population": pd.array([100 * (i + 1) for i in range(n)], dtype="Int64"),
            "source": ["test"] * n,
            "source_id": [str(i) for i in range(n)],
            "sensitivity": ["public"] * n,
        },
        geometry=[shapely.Point(lon0 + 0.001 * i, lat0) for i in range(n)],
        crs="EPSG:4326",
    )


def _result(name: str, values: list[float], ids: list[list[str]] | None = None) -> FactorResult:
    raw = np.array(values, dtype="float64")
    ids = ids or [[] for _ in values]
    src = np.repeat(np.arange(len(ids)), [len(x) for x in ids])
    flat = np.array([v for x in ids for v in x], dtype=object)
    return FactorResult(
        name=name,
        raw=raw,
        normalised=raw.copy(),
        evidence=top_ids(src, flat, -np.arange(len(flat), dtype=float), len(values)),
    )


def test_score_is_a_probabilistic_or_over_available_factors() -> None:
    params = load_risk_params(None)
    results = [
        _result("concession_pressure", [0.8, 0.2, np.nan, np.nan], [["k1", "k2"], [], [], []]),
        _result("incident_intensity", [0.4, np.nan, 0.9, np.nan], [["i9"], [], ["i1"], []]),
    ]
    out = combine(_communities(4), results, params)
    # 1 − (1 − 0.8)(1 − 0.4) = 0.88: the strong factor is not averaged away by the weak one.
    assert out["score"].tolist()[:3] == pytest.approx([88.0, 20.0, 90.0])
    assert math.isnan(out["score"].iloc[3])
    assert out["risk_class"].tolist() == ["very high", "low", "very high", "no data"]
    # Shapley parts: non-negative, adding up to the score exactly at the published decimal.
    c = out["concession_pressure_contribution"].fillna(0)
    i = out["incident_intensity_contribution"].fillna(0)
    assert (c + i).round(1).tolist()[:3] == out["score"].tolist()[:3]
    # Two factors: each gets half the joint value plus half its value alone.
    assert c.iloc[0] == pytest.approx(0.5 * (80 + (88 - 40)), abs=0.05)
    assert i.iloc[0] == pytest.approx(0.5 * (40 + (88 - 80)), abs=0.05)
    assert out["concession_pressure_evidence"].iloc[0] == ["k1", "k2"]
    assert out["incident_intensity_evidence"].iloc[2] == ["i1"]
    assert out["factors_missing"].iloc[1] == ["incident_intensity"]
    assert out["score_caveat"].iloc[0] == ""
    assert (
        out["score_caveat"]
        .iloc[1]
        .startswith("based on 1 of 2 factors; no data for incident_intensity")
    )
    assert out["score_caveat"].iloc[3] == "no data for any factor here: no score"
    assert pd.isna(out["confidence"].iloc[3])


def test_weights_and_class_bounds_come_from_risk_toml(tmp_path) -> None:
    path = tmp_path / "risk.toml"
    path.write_text(
        "[concession_pressure]\nweight = 3.0\n[incident_intensity]\nweight = 1.0\n"
        "[classes]\nmedium = 10\nhigh = 20\nvery_high = 30\n"
    )
    params = load_risk_params(path)
    out = combine(
        _communities(1),
        [_result("concession_pressure", [0.2]), _result("incident_intensity", [0.6])],
        params,
    )
    assert out["score"].iloc[0] == pytest.approx(round(100 * (1 - 0.8**3 * 0.4), 1))
    assert out["risk_class"].iloc[0] == "very high"


def test_aggregate_is_the_one_combination_for_arrays_of_any_shape() -> None:
    a = np.array([[0.0, 0.5], [1.0, np.nan]], dtype=np.float32)
    b = np.array([[0.0, 0.5], [0.2, np.nan]], dtype=np.float32)
    out = aggregate([a, b], [1.0, 1.0])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0], [0.0, 0.75])
    assert out[1, 0] == 1.0 and np.isnan(out[1, 1])


def test_the_class_is_that_of_the_published_score() -> None:
    """A score that rounds to 50 is "high": the reader sees 50 · high, never 50 · medium."""
    params = load_risk_params(None)
    n = 1 - 0.49996
    out = combine(_communities(1), [_result("incident_intensity", [n])], params)
    assert out["score"].iloc[0] == 50.0 and out["risk_class"].iloc[0] == "high"
    classes = params.classes
    assert classes.of(np.array([24.9, 25.0, 49.9, 50.0, 74.9, 75.0, np.nan])).tolist() == [
        "low",
        "medium",
        "medium",
        "high",
        "high",
        "very high",
        "no data",
    ]


def test_rounded_parts_add_up_to_the_rounded_score() -> None:
    rng = np.random.default_rng(7)
    parts = rng.uniform(0, 40, (500, 3))
    parts[rng.uniform(size=(500, 3)) < 0.2] = np.nan
    total = np.round(np.nansum(parts, axis=1), 1)
    out = round_parts(parts, total)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(parts))
    np.testing.assert_allclose(np.nansum(out, axis=1), total, atol=1e-9)
    assert (np.abs(np.nan_to_num(out - parts)) <= 0.1 + 1e-9).all()


def test_confidence_follows_evidence_precision_and_coverage() -> None:
    params = load_risk_params(None)
    communities = _communities(5)
    c = _result("concession_pressure", [1.0, 0.45, 0.0, 0.9, np.nan])
    c.precision = np.array(["precise", "stand_in", None, "approximate", None], dtype=object)
    t = _result("tailings_exposure", [np.nan, np.nan, np.nan, 0.0, np.nan])
    i = _result("incident_intensity", [0.0, 0.0, 0.0, 0.0, np.nan])
    out = combine(communities, [c, t, i], params)
    # A precise mine at the door, 2 of 3 factors looked at: medium (coverage).
    assert out["confidence"].iloc[0] == "medium"
    assert out["confidence_reasons"].iloc[0] == ["factors_missing"]
    # A province-wide stand-in: low, whatever else.
    assert out["confidence"].iloc[1] == "low"
    assert "province_stand_in" in out["confidence_reasons"].iloc[1]
    # Nothing found where 2 of 3 factors looked: medium.
    assert out["confidence"].iloc[2] == "medium"
    # Every factor looked, the evidence estimated: medium for its location alone.
    assert out["confidence"].iloc[3] == "medium"
    assert out["confidence_reasons"].iloc[3] == ["approximate_location"]
    assert pd.isna(out["confidence"].iloc[4])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[concession_pressure]\ndecay = 3\n", r"\[concession_pressure\] decay: Extra inputs"),
        ("[classes]\nmedium = 60\nhigh = 50\n", r"\[classes\] class bounds must satisfy"),
        ("[tailings]\nweight = 1\n", "unknown section\\(s\\) tailings"),
    ],
)
def test_risk_toml_mistakes_are_named(tmp_path, text, message) -> None:
    path = tmp_path / "risk.toml"
    path.write_text(text)
    with pytest.raises(CatalogError, match=message):
        load_risk_params(path)


def test_hex_suppresses_small_counts() -> None:
    communities = _communities(5)  # five places within 5 km: one res-7 cell or two
    communities["score"] = [10.0, 20.0, 30.0, 40.0, np.nan]
    far = gpd.GeoDataFrame(
        geometry=[shapely.Point(16.0, 4.0)] * 2 + [shapely.Point(22.0, 6.54)] * 4, crs="EPSG:4326"
    )
    hexes = risk_hex(communities, None, far, None, HexParams(resolutions=(5,), min_count=3))
    assert set(hexes["resolution"]) == {5}
    rows = hexes.set_index("h3")
    # The cell with 5 communities (4 scored) and 4 incidents shows both.
    full = rows[rows["communities"] == 5]
    assert len(full) == 1 and full["incidents"].iloc[0] == 4
    assert full["mean_score"].iloc[0] == pytest.approx(25.0) and full["max_score"].iloc[0] == 40.0
    # The cell with only 2 incidents and no community would show a small count: it is dropped.
    assert len(rows) == 1
    assert (hexes.geometry.geom_type == "Polygon").all()


def test_hex_never_shows_a_count_below_k_on_the_bundled_build(built, build_dir) -> None:
    from geo_service.store.files import load_layer

    hexes = load_layer(build_dir, "risk_hex")
    for col in ("communities", "incidents"):
        shown = hexes[col].dropna()
        assert (shown >= 3).all()
    scored = hexes.dropna(subset=["mean_score"])
    assert (scored["communities"] >= 3).all()
    assert set(hexes["resolution"]) == {3, 5, 7}


def test_concession_surroundings() -> None:
    site = gpd.GeoDataFrame(
        {
            "concession_id": ["k0"],
            "name": ["mine"],
            "holder": [None],
            "commodity": ["Diamond"],
            "status": [None],
            "country": ["CAF"],
            "footprint": ["site"],
            "footprint_radius_m": [2000.0],
            "source": ["t"],
            "source_id": ["0"],
            "sensitivity": ["public"],
        },
        geometry=[shapely.Point(21.98, 6.54)],
        crs="EPSG:4326",
    )
    ref = pd.Timestamp("2022-12-30")
    incidents = gpd.GeoDataFrame(
        {"date": pd.to_datetime(["2022-06-01", "2020-06-01", "2016-06-01", "2022-06-01"])},
        geometry=[
            shapely.Point(21.98, 6.54),
            shapely.Point(22.05, 6.54),
            shapely.Point(21.98, 6.60),
            shapely.Point(23.0, 6.54),
        ],
        crs="EPSG:4326",
    )
    covered = {
        Kind.incidents: CoverageArea(frozenset({"CAF"})),
        Kind.communities: CoverageArea(frozenset({"CAF"})),
    }
    params = ConcessionRiskParams()
    out = concession_risk(site, incidents, _communities(3), None, ref, params, covered)
    row = out.iloc[0]
    assert (row["incidents_1y"], row["incidents_3y"], row["incidents_5y"]) == (1, 2, 2)
    assert row["incidents_inside_1y"] == 1
    assert row["communities_within"] == 3 and row["population_within"] == 600
    assert out.geometry.iloc[0].geom_type == "Polygon"
    # No dam register covers CAR: "no data", never 0.
    assert pd.isna(row["dams_inside"])
    # Where no incident source looked, the counts are null, not 0 (the DR Congo false zeros).
    bare = concession_risk(site, None, _communities(3), None, ref, params, {})
    assert (
        bare[["incidents_1y", "incidents_5y", "communities_within", "dams_inside"]]
        .isna()
        .all(axis=None)
    )
    looked = concession_risk(site, None, _communities(3), None, ref, params, covered)
    assert looked["incidents_5y"].iloc[0] == 0
