"""Combining factors, the public hex layer, concession surroundings, and risk.toml."""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from geo_service.errors import CatalogError
from geo_service.risk.base import FactorResult, top_ids
from geo_service.risk.combine import combine
from geo_service.risk.concession_risk import ConcessionRiskParams, concession_risk
from geo_service.risk.generalise import risk_hex
from geo_service.risk.params import HexParams, load_risk_params


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


def test_score_is_weighted_mean_over_available_factors() -> None:
    params = load_risk_params(None)
    results = [
        _result("concession_pressure", [0.8, 0.2, np.nan, np.nan], [["k1", "k2"], [], [], []]),
        _result("incident_intensity", [0.4, np.nan, 0.9, np.nan], [["i9"], [], ["i1"], []]),
    ]
    out = combine(_communities(4), results, params)
    assert out["score"].tolist()[:3] == pytest.approx([60.0, 20.0, 90.0])
    assert math.isnan(out["score"].iloc[3])
    assert out["risk_class"].tolist() == ["high", "low", "very high", "no data"]
    # Contributions add up to the score, and each factor keeps its evidence.
    total = out["concession_pressure_contribution"].fillna(0) + out[
        "incident_intensity_contribution"
    ].fillna(0)
    assert total.tolist()[:3] == pytest.approx(out["score"].tolist()[:3])
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
    assert out["score"].iloc[0] == pytest.approx(100 * (3 * 0.2 + 0.6) / 4)
    assert out["risk_class"].iloc[0] == "very high"


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
    hexes = risk_hex(communities, far, HexParams(resolutions=(5,), min_count=3))
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
    out = concession_risk(site, incidents, _communities(3), None, ref, ConcessionRiskParams())
    row = out.iloc[0]
    assert (row["incidents_1y"], row["incidents_3y"], row["incidents_5y"]) == (1, 2, 2)
    assert row["incidents_inside_1y"] == 1
    assert row["communities_within"] == 3 and row["population_within"] == 600
    assert out.geometry.iloc[0].geom_type == "Polygon"
