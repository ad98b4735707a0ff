"""The factors a partition of the communities at a time: every community once, the evidence
within reach of each partition never missed, and the same values as all communities at once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod

from geo_service.build import EVIDENCE_KINDS
from geo_service.ingest.population import read_population
from geo_service.risk import FACTORS
from geo_service.risk import partition as partition_module
from geo_service.risk.boxes import near
from geo_service.risk.combine import scores
from geo_service.risk.concession_risk import CommunitiesAround, concession_risk
from geo_service.risk.exposure import UnitMembers, members_of
from geo_service.risk.exposure_cells import Cells, cell_sums, cell_units
from geo_service.risk.exposure_weights import ExposureWeights, weights
from geo_service.risk.generalise import HexTotals, point_totals
from geo_service.risk.metric import nearest
from geo_service.risk.model import partitioned_model, risk_inputs
from geo_service.risk.params import load_risk_params
from geo_service.risk.partition import compute_partitioned, partitions
from geo_service.risk.runner import run_here
from geo_service.schemas import Kind
from geo_service.store.files import load_kind

GEOD = Geod(ellps="WGS84")


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.tuples(st.floats(-179.9, 179.9), st.floats(-80, 80)), min_size=1, max_size=80),
    st.sampled_from([1.0, 2.0, 4.0]),
    st.integers(1, 30),
)
def test_every_community_in_one_partition_inside_its_cell(points, size, most) -> None:
    """Every community once; a partition is one cell of the grid or of a quarter of it, and
    holds more than ``most`` only where the cell may not be cut again."""
    geoms = shapely.points(np.array(points))
    parts = partitions(geoms, size, most)
    rows = np.concatenate([p.rows for p in parts])
    assert sorted(rows.tolist()) == list(range(len(points)))
    for p in parts:
        x, y = shapely.get_x(geoms[p.rows]), shapely.get_y(geoms[p.rows])
        assert np.all(np.diff(p.rows) > 0)
        assert p.box == (x.min(), y.min(), x.max(), y.max())
        assert len(set(np.floor(x / size))) == 1 and len(set(np.floor(y / size))) == 1
        if len(p.rows) > most:  # only a cell that may not be cut again holds more
            smallest = min(
                size / 2**k for k in range(8) if size / 2**k >= partition_module.MIN_PARTITION_DEG
            )
            assert len(set(np.floor(x / smallest))) == 1
            assert len(set(np.floor(y / smallest))) == 1


@settings(max_examples=300, deadline=None)
@given(
    st.floats(-170, 170),
    st.floats(-70, 70),
    st.floats(0.0, 4.0),
    st.floats(0.0, 4.0),
    st.floats(0.0, 1.0),
    st.floats(0.0, 1.0),
    st.floats(0.0, 360.0),
    st.floats(1.0, 400_000.0),
)
def test_a_feature_within_reach_of_a_box_is_never_missed(x, y, w, h, fx, fy, azimuth, metres):
    """From any point of the box, whatever lies within ``metres`` (on the ellipsoid) is kept."""
    box = (x, y, x + w, min(y + h, 80.0))
    px, py = box[0] + fx * (box[2] - box[0]), box[1] + fy * (box[3] - box[1])
    qx, qy, _ = GEOD.fwd(px, py, azimuth, metres)
    assert near(np.array([[qx, qy, qx, qy]]), box, metres)[0]


@pytest.fixture(scope="module")
def bundled(built, build_dir: Path, catalog):
    layers = {k: load_kind(build_dir, k.value) for k in EVIDENCE_KINDS}
    inputs, _ = risk_inputs(layers, catalog)
    return inputs, load_risk_params(None)


def _same(a, b) -> None:
    """Two results of one factor: the same values (to rounding), evidence and metadata."""
    assert a.name == b.name
    np.testing.assert_allclose(a.raw, b.raw, rtol=1e-12, atol=1e-15, equal_nan=True)
    np.testing.assert_allclose(a.normalised, b.normalised, rtol=1e-12, atol=1e-15, equal_nan=True)
    assert a.columns.keys() == b.columns.keys()
    for key in a.columns:
        x, y = a.columns[key], b.columns[key]
        if x.dtype.kind == "f":
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12, equal_nan=True, err_msg=key)
        else:
            assert pd.Series(x).equals(pd.Series(y)), key
    assert a.evidence.to_pylist() == b.evidence.to_pylist()
    assert (a.precision is None) == (b.precision is None)
    if a.precision is not None:
        assert list(a.precision) == list(b.precision)
    assert a.metadata == b.metadata
    assert a.layers.keys() == b.layers.keys()
    for name in a.layers:
        pd.testing.assert_frame_equal(a.layers[name], b.layers[name], rtol=1e-12)


def test_partitions_give_what_all_communities_at_once_give(bundled, monkeypatch) -> None:
    """On the bundled build, cut into cells of half a degree (dozens of partitions, each
    with the evidence near it only), every factor's values, evidence, metadata and layers are
    those of all communities against all evidence."""
    inputs, params = bundled
    monkeypatch.setattr(partition_module, "PARTITION_DEG", 0.5)
    parts = partitions(inputs.communities.geometry.to_numpy(), 0.5)
    assert len(parts) > 20
    together = [f.compute(inputs, params.factors[name]) for name, f in FACTORS.items()]
    done = partitioned_model(inputs, params)
    apart = done.results
    assert done.metadata["partitions"] == len(parts)
    for a, b in zip(together, apart, strict=True):
        _same(a, b)
    consequence = apart[[r.name for r in apart].index("tailings_exposure")].layers
    assert consequence["tailings_consequence"]["people_in_runout"].fillna(0).sum() > 0
    # The communities around each concession, added up over the partitions: the same layer.
    args = (inputs.concessions, inputs.incidents, inputs.communities, inputs.tailings_dams)
    rest = (None, params.concession_risk, inputs.coverage)
    whole = concession_risk(*args, *rest)
    summed = concession_risk(*args, *rest, around=done.sums[CommunitiesAround.name])
    pd.testing.assert_frame_equal(whole, summed, check_exact=True)
    assert whole["communities_within"].sum() > 0
    # The share of each community's people every exposure factor reaches: the same values.
    everywhere = weights(inputs.communities.geometry.to_numpy(), inputs, params)
    found = done.values[ExposureWeights.name]
    assert found.keys() == everywhere.keys()
    for column, values in everywhere.items():
        assert np.array_equal(found[column], values), column
        assert values.any(), column
    # The public communities' risk_hex totals, added up over the partitions: exactly those of
    # all communities at once (whole numbers and highest values: the same in any order).
    score = scores(together, params, len(inputs.communities))
    resolutions = sorted(params.hex.resolutions)
    whole_totals = point_totals(inputs.communities.geometry.to_numpy(), score, resolutions)
    assert done.tables[HexTotals.name].keys() == whole_totals.keys()
    for r, table in whole_totals.items():
        pd.testing.assert_frame_equal(done.tables[HexTotals.name][r], table, check_exact=True)
        assert table["communities"].sum() == len(inputs.communities)


def test_a_partition_reads_only_the_evidence_near_it(bundled, monkeypatch) -> None:
    """Each task carries its communities and the incidents and concessions near them, not the
    rest; tasks finishing in any order give the same bytes."""
    inputs, params = bundled
    monkeypatch.setattr(partition_module, "PARTITION_DEG", 0.5)
    seen = []

    def backwards(fn, shared, tasks, label, size=None):  # type: ignore[no-untyped-def]
        assert label == "community partitions"
        for i in range(len(tasks)):
            t = tasks[i]
            seen.append((len(t.communities), [len(s) if s is not None else 0 for s in t.selected]))
        yield from reversed(list(run_here(fn, shared, tasks, label, size)))

    here = compute_partitioned(list(FACTORS.values()), inputs, params).results
    other = compute_partitioned(list(FACTORS.values()), inputs, params, backwards).results
    assert sum(c for c, _ in seen) == len(inputs.communities)
    names = list(FACTORS)
    incidents = [s[names.index("incident_intensity")] for _, s in seen]
    assert max(incidents) < len(inputs.incidents)
    for a, b in zip(here, other, strict=True):
        assert np.array_equal(a.raw, b.raw, equal_nan=True)
        assert np.array_equal(a.normalised, b.normalised, equal_nan=True)
        assert a.evidence.equals(b.evidence)
        assert a.metadata == b.metadata


def test_population_cells_a_partition_at_a_time(bundled, catalog, build_dir, monkeypatch) -> None:
    """The populated cells of the bundled WorldPop grid, cut into half-degree partitions (each
    with the communities, units and evidence near it), give per community and per chiefdom
    the people and people exposed of every cell measured at once; the units' public
    communities, found a partition of the communities at a time, are those of all at once."""
    inputs, params = bundled
    monkeypatch.setattr(partition_module, "PARTITION_DEG", 0.5)
    grids = [read_population(e)[0] for e in catalog.sources if e.kind == Kind.population]
    units = load_kind(build_dir, "units").reset_index(drop=True)
    cells = Cells.of(grids)
    assert len(grids) == 1 and len(cells) > 100_000
    tasks = []

    def counting(fn, shared, chunks, label, size=None):  # type: ignore[no-untyped-def]
        tasks.append(len(chunks))
        yield from run_here(fn, shared, chunks, label, size)

    sums = cell_sums(cells, grids, inputs, units, params, counting)
    assert tasks[0] > 4

    points = cells.points()
    w = weights(points, inputs, params)
    catchment = params.exposure.catchment_km * 1000.0
    owner, _ = nearest(points, inputs.communities.geometry.to_numpy(), catchment)
    mine = owner >= 0
    n, m = len(inputs.communities), len(units)
    label = cell_units(units, sorted(units["level"].dropna().unique()), cells, grids)

    def by_unit(values: np.ndarray) -> np.ndarray:
        return sum(np.bincount(lab[lab >= 0], values[lab >= 0], minlength=m) for lab in label)

    def close(a: np.ndarray, b: np.ndarray) -> None:
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-6)

    close(sums.community_people, np.bincount(owner[mine], cells.people[mine], minlength=n))
    close(sums.unit_people, by_unit(cells.people))
    assert sums.in_catchment == pytest.approx(cells.people[mine].sum(), rel=1e-12)
    for column, share in w.items():
        alone = np.bincount(owner[mine], (cells.people * share)[mine], minlength=n)
        close(sums.community_exposed[column], alone)
        close(sums.unit_exposed[column], by_unit(cells.people * share))
    assert sum(sums.unit_exposed[c].sum() > 0 for c in w) >= 2

    done = compute_partitioned([], inputs, params, steps=[(UnitMembers(units), None)])
    u, c = done.tables[UnitMembers.name]
    whole_u, whole_c = members_of(units, inputs.communities)
    assert len(u) > 1000
    assert np.array_equal(u, whole_u) and np.array_equal(c, whole_c)
