"""``risk_hex``: small counts stay hidden, and cannot be worked out from the others."""

from __future__ import annotations

from fractions import Fraction

import h3
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from geo_service.risk.generalise import _mean, add_up, point_totals, suppress
from geo_service.store.files import load_layer

K = 3


def test_hidden_count_cannot_be_recovered_by_subtraction() -> None:
    """12 in a cell, 10 and 2 in two of its children: showing the 10 would give the 2 away."""
    parent = "856a11b7fffffff"
    a, b = sorted(h3.cell_to_children(parent, 7))[:2]
    shown = suppress({5: pd.Series({parent: 12}), 7: pd.Series({a: 10, b: 2})}, K)
    assert bool(shown[5][parent]) and not shown[7][a] and not shown[7][b]
    # 15 = 10 + 2 + 3: showing the 10 and the 3 would leave 2. The smallest shown child goes
    # too, and the hidden ones then hold 5 between them: neither can be told.
    c = sorted(h3.cell_to_children(parent, 7))[2]
    shown = suppress({5: pd.Series({parent: 15}), 7: pd.Series({a: 10, b: 2, c: 3})}, K)
    assert list(shown[7]) == [True, False, False]
    # Nothing is shown under a hidden cell, whatever it holds.
    shown = suppress({5: pd.Series({parent: 2}), 7: pd.Series({a: 2})}, K)
    assert not shown[5][parent] and not shown[7][a]


def test_suppression_on_the_bundled_build(built, build_dir) -> None:
    hexes = load_layer(build_dir, "risk_hex")
    resolutions = sorted(hexes["resolution"].unique())
    assert resolutions == [3, 5, 7]
    for column in ("communities", "incidents"):
        shown = hexes.dropna(subset=[column])
        assert (shown[column] >= K).all()
        by_res = {r: shown[shown["resolution"] == r].set_index("h3")[column] for r in resolutions}
        for coarse, fine in zip(resolutions, resolutions[1:], strict=False):
            children = by_res[fine]
            parents = pd.Series([h3.cell_to_parent(c, coarse) for c in children.index])
            # Nothing is shown under a cell whose own count is hidden.
            assert parents.isin(by_res[coarse].index).all(), column
            visible = children.groupby(parents.to_numpy()).sum()
            rest = by_res[coarse] - visible.reindex(by_res[coarse].index, fill_value=0)
            # What the shown children leave of their parent is nothing or at least K.
            assert not ((rest > 0) & (rest < K)).any(), (
                column,
                coarse,
                rest[(rest > 0) & (rest < K)],
            )


def test_restricted_incidents_count_only_as_their_cells(built, build_dir) -> None:
    """At resolution 7, finer than the cells restricted reports are known by, they are absent;
    at 5 and coarser they count where their cell is shown."""
    hexes = load_layer(build_dir, "risk_hex")
    points = load_layer(build_dir, "incidents", public=True)
    cells = load_layer(build_dir, "incident_areas")
    assert set(points.geom_type) == {"Point"} and len(cells)
    at7 = pd.Series([h3.latlng_to_cell(p.y, p.x, 7) for p in points.geometry]).value_counts()
    shown7 = hexes[(hexes["resolution"] == 7)].dropna(subset=["incidents"]).set_index("h3")
    assert (shown7["incidents"] == at7.reindex(shown7.index)).all()
    # A point counts in the parents of its finest cell (so counts nest exactly).
    at5 = pd.Series([h3.cell_to_parent(c, 5) for c in at7.index.repeat(at7)]).value_counts()
    at5 = at5.add(cells.set_index("h3")["count"], fill_value=0)
    shown5 = hexes[(hexes["resolution"] == 5)].dropna(subset=["incidents"]).set_index("h3")
    assert (shown5["incidents"] == at5.reindex(shown5.index)).all()
    assert set(cells["h3"]) & set(shown5.index)  # the restricted cells do count at 5


@pytest.mark.parametrize("column", ["mean_score", "max_score"])
def test_scores_hidden_with_their_counts(built, build_dir, column) -> None:
    hexes = load_layer(build_dir, "risk_hex")
    assert hexes.loc[hexes["communities"].isna(), column].isna().all()


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10**11), st.integers(0, 10**6))
def test_a_cells_mean_score_is_its_hundredths_exactly_rounded(total, n) -> None:
    """The mean of whole hundredths, rounded as ``numpy.round`` rounds (halves to even), with
    no error of floating point: the same wherever the sums were made."""
    got = _mean(pd.Series([total]), pd.Series([n])).iloc[0]
    if n == 0:
        assert np.isnan(got)
    else:
        assert got == round(Fraction(total, n)) / 100


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(-10, 10),
            st.floats(-10, 10),
            st.one_of(st.just(float("nan")), st.integers(0, 1000).map(lambda t: t / 10)),
        ),
        min_size=1,
        max_size=60,
    ),
    st.integers(1, 5),
)
def test_totals_added_up_in_any_split_are_those_of_all_rows(rows, cut) -> None:
    """Communities split into parts (as partitions split them) add up to the totals of all
    of them at once, exactly."""
    xy = np.array([(x, y) for x, y, _ in rows])
    scores = np.array([s for _, _, s in rows])
    points = shapely.points(xy)
    whole = point_totals(points, scores, [3, 5])
    pieces = np.array_split(np.arange(len(rows))[::-1], cut)
    parts = add_up([point_totals(points[p], scores[p], [3, 5]) for p in pieces])
    for r in (3, 5):
        pd.testing.assert_frame_equal(parts[r], whole[r], check_exact=True)
