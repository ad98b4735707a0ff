"""Problems found while validating a source, kept as columns so a million-row file stays cheap.

Each problem names the file, where the row sits in it (line for CSV, feature number else), the
publisher field, the value and what was expected, and what was done about it:

- ``rejected``: the row is not in the layer (a required value is missing or wrong, a geometry
  cannot be used, a duplicate id);
- ``cleared``: an optional value was wrong, so the row is kept with that value left empty;
- ``repaired``: an invalid geometry was fixed with ``make_valid`` without changing its shape;
- ``flagged``: kept as published, but probably wrong (lon/lat swapped, outside its country).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

ACTIONS = ("rejected", "cleared", "repaired", "flagged")
#: Columns of a rejects file, in order.
COLUMNS = [
    "source",
    "file",
    "record",
    "position",
    "field",
    "target",
    "value",
    "reason",
    "action",
    "message",
]


@dataclass
class Problems:
    """An append-only list of problems for one source file."""

    chunks: list[pd.DataFrame] = field(default_factory=list)

    def add(
        self,
        index: np.ndarray,
        field_name: str,
        values: pd.Series | np.ndarray | list | None,
        reason: str | pd.Series,
        action: str,
        target: str = "",
    ) -> None:
        """Record one kind of problem for the rows at positional ``index``."""
        index = np.asarray(index, dtype=np.int64)
        if index.size == 0:
            return
        assert action in ACTIONS, action
        if values is None:
            vals = pd.Series([""] * index.size, dtype="str")
        else:
            vals = pd.Series(np.asarray(values, dtype=object)).astype("str").reset_index(drop=True)
            vals = vals.where(pd.Series(np.asarray(values, dtype=object)).notna().to_numpy(), "")
        reasons = (
            pd.Series(reason).reset_index(drop=True).astype("str")
            if isinstance(reason, pd.Series)
            else pd.Series([reason] * index.size, dtype="str")
        )
        self.chunks.append(
            pd.DataFrame(
                {
                    "index": index,
                    "field": field_name,
                    "value": vals,
                    "reason": reasons,
                    "action": action,
                    "target": target,
                }
            )
        )

    def frame(self) -> pd.DataFrame:
        """All problems, in file order."""
        if not self.chunks:
            return pd.DataFrame(
                {
                    "index": pd.Series([], dtype="int64"),
                    **{
                        c: pd.Series([], dtype="str")
                        for c in ("field", "value", "reason", "action", "target")
                    },
                }
            )
        out = pd.concat(self.chunks, ignore_index=True)
        return out.sort_values("index", kind="stable").reset_index(drop=True)

    def rows(self, action: str) -> np.ndarray:
        """Positional indices of rows with at least one problem of this action."""
        frames = [c.loc[c["action"] == action, "index"].to_numpy() for c in self.chunks]
        frames = [f for f in frames if f.size]
        if not frames:
            return np.empty(0, dtype=np.int64)
        return np.unique(np.concatenate(frames))


def shorten(value: str, limit: int = 60) -> str:
    """A value short enough to quote in a one-line message."""
    return value if len(value) <= limit else value[: limit - 3] + "..."


def got(values: pd.Series) -> pd.Series:
    """``got '...'`` phrases for a series of offending values."""
    text = values.astype("str").where(values.notna().to_numpy(), "")
    text = text.map(shorten)
    return ("got '" + text + "'").where(text != "", "got nothing")
