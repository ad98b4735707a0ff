"""Risk parameters from ``layers/risk.toml``: every factor's section, the classes, the hex grid.

Parsed into the factors' own pydantic models, so a typo is an error naming the section and key,
and the whole set is recorded (with a hash) in every build's metadata.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from geo_service.errors import CatalogError
from geo_service.risk import FACTORS
from geo_service.risk.base import FactorParams
from geo_service.risk.concession_risk import ConcessionRiskParams

MODEL_VERSION = "2.0"


#: Score classes, lowest first, and the word for a community with no score.
CLASS_NAMES = ("low", "medium", "high", "very high")
NO_DATA = "no data"


class Classes(BaseModel):
    """Lower bounds of the score classes (score 0–100): the one place a score gets its class."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    medium: float = 25.0
    high: float = 50.0
    very_high: float = 75.0

    @model_validator(mode="after")
    def _ordered(self) -> Classes:
        if not 0 < self.medium < self.high < self.very_high <= 100:
            raise ValueError("class bounds must satisfy 0 < medium < high < very_high <= 100")
        return self

    @property
    def bounds(self) -> tuple[float, float, float]:
        """The lower bounds of medium, high and very high."""
        return self.medium, self.high, self.very_high

    def of(self, scores: np.ndarray | float | None) -> np.ndarray:
        """The class of each score ("no data" where it is missing or NaN), as published.

        Classify the score as it is published (rounded): a reader who sees 50 sees "high".
        """
        s = np.atleast_1d(np.asarray(scores, dtype="float64"))
        bins = np.digitize(np.nan_to_num(s, nan=-1.0), self.bounds)
        labels = np.array(CLASS_NAMES, dtype=object)[bins]
        return np.where(np.isnan(s), NO_DATA, labels).astype(object)


class HexParams(BaseModel):
    """The public H3 aggregation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    resolutions: tuple[int, ...] = Field(
        (3, 5, 7),
        description="H3 resolutions: 3 (about 12,000 km² a cell) for a continent on a map, "
        "5 (250 km²) for a region, 7 (5 km²) for a district.",
    )
    min_count: int = Field(
        3, ge=1, description="Cells with fewer features than this are suppressed."
    )


class SurfaceParams(BaseModel):
    """Resolution, size limit, margin and overviews of the risk surface."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cell_m: float = Field(
        250.0,
        gt=0.0,
        description="Cell size in Web Mercator metres (cell·cos φ on the ground: 250 m at the "
        "equator, 217 m at 30°): a village-scale incident bandwidth (2 km) spans 8 cells and "
        "the smallest mine footprints (2 km radius) 16 across. Grown to respect max_cells.",
    )
    max_cells: int = Field(
        110_000_000,
        ge=1,
        description="Most cells a surface may compute (only blocks near the evidence are "
        "computed; the rest of the lattice is nodata). The bundled evidence needs 108 million "
        "at 250 m (86 million before the Amazon's mining scars), in tiles of 8 million cells. "
        "Evidence that needs more gets larger cells, recorded in the metadata.",
    )
    margin_km: float = Field(
        50.0,
        ge=0.0,
        description="Ground distance around the evidence that is computed (at least the "
        "longest reach of any factor: 75 km for a district-level incident kernel): concession "
        "pressure reaches max_km (50 km) beyond a footprint, and a surface cut at the "
        "footprints would hide it. Blocks of cells beyond it are not computed (nodata).",
    )
    overview_levels: tuple[int, ...] | None = Field(
        None,
        description="Overview decimation factors (2, 4, 8, …). None: halve until the overview "
        "fits in one 512-cell tile, so a viewer draws the whole map from one read.",
    )

    @field_validator("overview_levels")
    @classmethod
    def _powers_of_two(cls, v: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if v is None:
            return v
        if not v or any(f < 2 or f & (f - 1) for f in v) or list(v) != sorted(set(v)):
            raise ValueError("overview levels must be increasing powers of 2 from 2 (2, 4, 8, …)")
        return v


class ExposureParams(BaseModel):
    """How people are counted (``[exposure]`` in ``risk.toml``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    catchment_km: float = Field(
        5.0,
        gt=0,
        description="A populated cell counts for the nearest community within this distance "
        "(none beyond it: the cell then counts only for its units).",
    )
    ring_precisions: tuple[str, ...] = Field(
        ("precise", "approximate"),
        description="Which mine sites the rings are drawn around (concession_pressure's "
        "precision words): not the stand-ins for a whole province.",
    )


class RiskParams(BaseModel):
    """Every parameter of the risk model."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    factors: dict[str, FactorParams]
    classes: Classes = Classes()
    hex: HexParams = HexParams()
    concession_risk: ConcessionRiskParams = ConcessionRiskParams()
    surface: SurfaceParams = SurfaceParams()
    exposure: ExposureParams = ExposureParams()

    def record(self) -> dict[str, Any]:
        """A JSON-ready copy for the build metadata."""
        return {
            "model_version": MODEL_VERSION,
            "factors": {k: v.model_dump(mode="json") for k, v in self.factors.items()},
            "classes": self.classes.model_dump(),
            "hex": self.hex.model_dump(),
            "concession_risk": self.concession_risk.model_dump(),
            "surface": self.surface.model_dump(),
            "exposure": self.exposure.model_dump(),
        }

    def digest(self) -> str:
        """SHA-256 of :meth:`record`."""
        return hashlib.sha256(json.dumps(self.record(), sort_keys=True).encode()).hexdigest()


def load_risk_params(path: Path | None) -> RiskParams:
    """Read ``risk.toml``; a missing file means every default."""
    raw: dict[str, Any] = {}
    if path is not None and Path(path).exists():
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise CatalogError(f"not valid TOML: {exc}", path=path) from exc
    unknown = sorted(
        set(raw) - set(FACTORS) - {"classes", "hex", "concession_risk", "surface", "exposure"}
    )
    if unknown:
        raise CatalogError(
            f"unknown section(s) {', '.join(unknown)}; sections are {', '.join(FACTORS)}, classes, hex, concession_risk, surface, exposure",
            path=path,
        )
    sections: dict[str, Any] = {}
    models = {
        **{name: f.Params for name, f in FACTORS.items()},
        "classes": Classes,
        "hex": HexParams,
        "concession_risk": ConcessionRiskParams,
        "surface": SurfaceParams,
        "exposure": ExposureParams,
    }
    for name, model in models.items():
        try:
            sections[name] = model(**raw.get(name, {}))
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(x) for x in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            raise CatalogError(
                f"[{name}] {key}: {msg}" if key else f"[{name}] {msg}", path=path
            ) from exc
    return RiskParams(
        factors={name: sections[name] for name in FACTORS},
        classes=sections["classes"],
        hex=sections["hex"],
        concession_risk=sections["concession_risk"],
        surface=sections["surface"],
        exposure=sections["exposure"],
    )
