"""Boxes in longitude and latitude grown by a distance on the ground, and the features that
come within that distance of one: how a partition of the communities gets the evidence within
a factor's reach (``partition.py``).
"""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np

from geo_service.risk.base import Box

#: Metres in a degree of latitude, at least (the polar value is 111.7 km).
_LAT_M = 110_570.0
_EQUATOR_M = 111_320.0


def grow(box: Box, metres: float) -> Box:
    """``box`` grown by at least ``metres`` on the ground every way (10 % to spare for the
    projections distances are measured in)."""
    m = metres * 1.1
    dlat = m / _LAT_M + 0.01
    lat = max(abs(box[1] - dlat), abs(box[3] + dlat))
    if lat >= 89.0:
        return (-180.0, box[1] - dlat, 180.0, box[3] + dlat)
    dlon = m / (_EQUATOR_M * math.cos(math.radians(lat))) + 0.01
    return (box[0] - dlon, box[1] - dlat, box[2] + dlon, box[3] + dlat)


def near(bounds: np.ndarray, box: Box | None, metres: float) -> np.ndarray:
    """Which features (their lon/lat ``bounds``, n × 4) come within ``metres`` of ``box``: a
    mask, never missing one (boxes are compared, grown by ``grow``); none for no box."""
    if box is None:
        return np.zeros(len(bounds), dtype=bool)
    x0, y0, x1, y1 = grow(box, metres)
    b = np.asarray(bounds, dtype="float64").reshape(-1, 4)
    return (b[:, 2] >= x0) & (b[:, 0] <= x1) & (b[:, 3] >= y0) & (b[:, 1] <= y1)


def subset(frame: gpd.GeoDataFrame | None, mask: np.ndarray) -> gpd.GeoDataFrame | None:
    """The rows of ``frame`` in ``mask``, in their order, numbered from 0."""
    if frame is None:
        return None
    return frame.iloc[np.flatnonzero(mask)].reset_index(drop=True)


def only(frame: gpd.GeoDataFrame, names: tuple[str, ...]) -> gpd.GeoDataFrame:
    """``frame`` with only the columns of ``names`` it has, and its geometry: what a partition
    is sent of a layer (a factor reads a few of its columns)."""
    keep = [c for c in frame.columns if c in names or c == frame.geometry.name]
    return frame[keep]
