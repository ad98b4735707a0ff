"""Map definitions (``layers/maps.toml``): what each map shows, titled in every language."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from geo_service.errors import CatalogError

LANGUAGES = ("en", "fr", "pt")


class Texts(BaseModel):
    """One text in every language the pages speak."""

    model_config = ConfigDict(extra="forbid")

    en: str
    fr: str
    pt: str

    def get(self, lang: str) -> str:
        """The text in ``lang`` (English if unknown)."""
        return getattr(self, lang if lang in LANGUAGES else "en")


class MapDefinition(BaseModel):
    """One map page."""

    model_config = ConfigDict(extra="forbid")

    id: str
    title: Texts
    description: Texts
    centre: tuple[float, float] = Field(description="Latitude, longitude of the first view.")
    zoom: int = Field(ge=0, le=18)
    layers: list[str] = Field(min_length=1)


def load_maps(path: Path) -> dict[str, MapDefinition]:
    """Every map of the file, or ``CatalogError`` naming the map and field at fault."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CatalogError(str(exc), path=path) from exc
    maps = {}
    for key, value in raw.items():
        try:
            maps[key] = MapDefinition(id=key, **value)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise CatalogError(f"map '{key}', field '{where}': {first['msg']}", path=path) from exc
    return maps
