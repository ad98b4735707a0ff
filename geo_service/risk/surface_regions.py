"""Where the risk surface is computed: the blocks of cells near the evidence, in regions.

The bundled evidence spans Brazil to East Africa (about 10,800 × 4,900 km). One grid over all of
it at 250 m would be 850 million cells, nearly all of them ocean or hundreds of kilometres from
any evidence, and a cell-count limit on it forced 1.8 km cells. Instead the grid's lattice is
cut into square blocks of ``BLOCK_CELLS`` cells, and only the blocks that come within the margin
of a piece of evidence are computed (``occupied_blocks``). The rest stay nodata, as the world
beyond a single grid's margin did.

Occupied blocks are grouped into regions (``group_regions``): blocks whose evidence could
influence one another — closer than the factors' longest reach — share a region, and each region
is computed on its own rectangle of the lattice, as a whole grid would be. A region never reads
evidence from another: two regions are at least that reach apart, so every computed cell has the
value a single grid over everything would give it (up to floating-point rounding). Regions whose
rectangles would overlap are merged, so every cell belongs to one region at most.

The river pathway reaches hundreds of kilometres below a dam: the reach lines are evidence here,
so the blocks along them are computed and a dam's river shares its region.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from geo_service.risk.metric import EARTH_RADIUS_M

#: Cells per side of a block. 128 cells are 32 km at 250 m: fine enough to follow coasts and
#: rivers, coarse enough that the block map of a continent is a few thousand entries.
BLOCK_CELLS = 128


@dataclass(frozen=True)
class Region:
    """A rectangle of the lattice computed as one grid, and which of its blocks are kept."""

    #: Rows and columns of the lattice (cells).
    rows: slice
    cols: slice
    #: Per block of the rectangle, whether it is within the margin of some evidence.
    blocks: np.ndarray

    def kept_cells(self, block: int = BLOCK_CELLS) -> np.ndarray:
        """Per cell of the rectangle, whether its block is kept (bool, rows × columns)."""
        mask = np.repeat(np.repeat(self.blocks, block, axis=0), block, axis=1)
        return mask[: self.rows.stop - self.rows.start, : self.cols.stop - self.cols.start]

    @property
    def cells(self) -> int:
        """Cells computed and kept."""
        return int(self.kept_cells().sum())


def occupied_blocks(
    boxes: np.ndarray,
    west: float,
    north: float,
    cell: float,
    shape: tuple[int, int],
    margin_m: float | np.ndarray,
    block: int = BLOCK_CELLS,
) -> np.ndarray:
    """Blocks touched by an EPSG:3857 box grown by ``margin_m`` ground metres (bool).

    ``boxes`` is (n, 4): west, south, east, north in Mercator metres, and (n,) the latitude of
    the box's most poleward edge in column 4 — the margin in Mercator metres grows with it.
    ``margin_m`` is one margin for every box, or one per box (each piece of evidence grown by
    its own reach: a mine's 50 km need not take an incident's 75). Boxes are painted through a
    two-dimensional difference array: four additions per box and two cumulative sums, whatever
    the boxes' sizes.
    """
    nr, nc = -(-shape[0] // block), -(-shape[1] // block)
    size = cell * block
    margin_m = np.broadcast_to(np.asarray(margin_m, dtype="float64"), (len(boxes),))
    far = np.minimum(np.abs(boxes[:, 4]) + np.degrees(margin_m / EARTH_RADIUS_M), 89.0)
    pad = margin_m / _min_scale(far)
    c0 = np.floor((boxes[:, 0] - pad - west) / size).astype(np.int64)
    c1 = np.floor((boxes[:, 2] + pad - west) / size).astype(np.int64)
    r0 = np.floor((north - boxes[:, 3] - pad) / size).astype(np.int64)
    r1 = np.floor((north - boxes[:, 1] + pad) / size).astype(np.int64)
    on = (c1 >= 0) & (c0 < nc) & (r1 >= 0) & (r0 < nr)
    c0, c1 = np.clip(c0[on], 0, nc - 1), np.clip(c1[on], 0, nc - 1) + 1
    r0, r1 = np.clip(r0[on], 0, nr - 1), np.clip(r1[on], 0, nr - 1) + 1
    diff = np.zeros((nr + 1, nc + 1), dtype=np.int64)
    np.add.at(diff, (r0, c0), 1)
    np.add.at(diff, (r0, c1), -1)
    np.add.at(diff, (r1, c0), -1)
    np.add.at(diff, (r1, c1), 1)
    return diff.cumsum(axis=0).cumsum(axis=1)[:nr, :nc] > 0


def _min_scale(lat_deg: np.ndarray) -> np.ndarray:
    """Smallest ground metres per Mercator metre at these latitudes (the spherical cos φ, less
    0.7 % for the ellipsoid's north–south scale): a margin divided by it never falls short."""
    return np.cos(np.radians(lat_deg)) * (1.0 - 0.0067)


def group_regions(
    occupied: np.ndarray,
    cell: float,
    shape: tuple[int, int],
    reach_m: float,
    poleward_lat: float,
    block: int = BLOCK_CELLS,
) -> list[Region]:
    """Occupied blocks grouped into non-overlapping rectangles at least ``reach_m`` apart.

    Blocks join one group when the gap between them is under ``reach_m`` on the ground (the
    block map is dilated by that many blocks, at the narrowest block of the grid, before
    labelling). Each group's rectangle is the box of its blocks; overlapping rectangles merge.
    """
    if not occupied.any():
        return []
    block_ground = cell * block * float(_min_scale(np.array([poleward_lat]))[0])
    # Two blocks d blocks apart (d − 1 empty between) join when each is grown by ⌈d/2⌉.
    gap = math.ceil(reach_m / block_ground) if reach_m > 0 else 0
    grown = occupied
    if gap > 0:
        grown = ndimage.binary_dilation(
            occupied, structure=np.ones((3, 3), dtype=bool), iterations=math.ceil(gap / 2)
        )
    labels, _ = ndimage.label(grown, structure=np.ones((3, 3), dtype=bool))
    labels = np.where(occupied, labels, 0)
    boxes = [
        [s[0].start, s[0].stop, s[1].start, s[1].stop]
        for s in ndimage.find_objects(labels)
        if s is not None
    ]
    boxes = _merge_overlapping(boxes)
    regions = []
    for r0, r1, c0, c1 in sorted(boxes):
        regions.append(
            Region(
                rows=slice(r0 * block, min(r1 * block, shape[0])),
                cols=slice(c0 * block, min(c1 * block, shape[1])),
                blocks=occupied[r0:r1, c0:c1].copy(),
            )
        )
    return regions


def _merge_overlapping(boxes: list[list[int]]) -> list[list[int]]:
    """Rectangles (r0, r1, c0, c1; half-open) merged until none overlap. A few dozen at most."""
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                if a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]:
                    boxes[i] = [min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])]
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return boxes
