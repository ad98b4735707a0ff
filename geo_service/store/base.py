"""What the service asks of a store: who is asking, what they ask for, what comes back.

Every query names the caller's access level, so the rules on restricted rows live in the store
(``LayerTable.visible``) and not in each route. Until tokens exist every caller is anonymous.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import pandas as pd


class Access(StrEnum):
    """A caller's access level, lowest first."""

    anonymous = "anonymous"
    viewer = "viewer"
    analyst = "analyst"
    admin = "admin"

    @property
    def sees_restricted(self) -> bool:
        """Whether restricted rows are served to this caller precisely."""
        return self in (Access.analyst, Access.admin)


#: Bounds of a ``bbox`` parameter: west, south, east, north (west > east crosses 180°).
BBox = tuple[float, float, float, float]


@dataclass(frozen=True)
class ItemQuery:
    """One items request, parsed and checked (``api/params.py``)."""

    bbox: BBox | None = None
    #: Inclusive bounds; None on a side is open (``..``).
    interval: tuple[pd.Timestamp | None, pd.Timestamp | None] | None = None
    #: Queryable property → the value asked for (equality).
    filters: dict[str, str] = field(default_factory=dict)
    limit: int = 100
    offset: int = 0
    #: Only these properties in each feature (None: all of them).
    properties: tuple[str, ...] | None = None
    #: Words to find in the features' names, whatever their case and accents; the best
    #: matches first (the whole name, then its start, then a word's start, then anywhere).
    q: str | None = None


@dataclass(frozen=True)
class FeaturePage:
    """The features of one page, already encoded, and how many matched in all."""

    layer: str
    build_id: str
    number_matched: int
    #: Row positions in the layer (for encoders that need the table, such as CSV).
    rows: np.ndarray
    #: Each feature as GeoJSON bytes.
    features: list[bytes]
