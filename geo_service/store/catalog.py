"""A build's ``catalog.json`` as the service reads it: typed models, checked when a build is
opened, so a catalog that lacks something fails there, naming the field, not in a page later.

``build.py`` writes the catalog; these models read it. What only the build and its reports use
(source paths, digests, counts) is kept as extra fields; the risk model's parameters stay a
mapping, as ``risk.toml`` shapes them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from geo_service.errors import NoBuildError


class _Entry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")


class LayerView(_Entry):
    """What a view of a layer holds: the whole layer, or its public view."""

    file: str
    count: int = 0
    bounds: tuple[float, float, float, float] | None = None
    time_extent: tuple[str, str] | None = None
    geometry_types: tuple[str, ...] = ()
    #: Column → its type, in the layer's order.
    fields: dict[str, str] = {}


class CatalogLayer(LayerView):
    """One layer of a build (vector or raster)."""

    id: str
    title: str
    kind: str
    id_field: str | None = None
    sources: tuple[str, ...] = ()
    sensitivity: dict[str, int] = {}
    #: The view anonymous callers see, for a layer holding restricted rows (its public rows).
    public: LayerView | None = None
    #: What the layer is and why, when its title does not say it all.
    description: str | None = None
    #: The layer of this layer's restricted rows as cells (``publication.AREAS``).
    areas: str | None = None
    #: For such a layer: the layer whose restricted rows it holds as cells.
    areas_of: str | None = None
    #: Cell size of a raster, metres.
    cell_m: float | None = None
    #: The CRS of a raster's grid (``EPSG:3857``).
    crs: str | None = None

    def as_seen(self, public: bool) -> CatalogLayer:
        """The layer as a caller sees it: the public view's file, count, bounds, dates and
        fields for a caller who sees only that (``public``), the layer's own otherwise."""
        if not public or self.public is None:
            return self.model_copy(update={"public": None})
        return self.model_copy(update={**dict(self.public), "public": None})


class CatalogSource(_Entry):
    """One source of a build, with what its credit needs."""

    title: str
    kind: str
    publisher: str
    licence: str
    licence_url: str | None = None
    attribution: str = ""
    url: str | None = None
    retrieved: str = ""
    #: Countries (ISO alpha-3) and area the source covers.
    coverage: dict[str, Any] = {}
    #: Countries its kept rows fall in.
    countries_seen: tuple[str, ...] = ()


class CatalogFile(_Entry):
    """A file of the build that is not a layer (the basemap)."""

    file: str
    attribution: str | None = None


class BuildCatalog(_Entry):
    """The catalog of one build."""

    build_id: str
    created: str
    layers: dict[str, CatalogLayer]
    sources: dict[str, CatalogSource]
    #: The risk model's parameters and factors (``risk.toml``), as the build used them.
    risk: dict[str, Any] = {}
    publication: dict[str, Any] = {}
    basemap: CatalogFile | None = None

    @classmethod
    def read(cls, data: dict[str, Any], where: str) -> BuildCatalog:
        """The catalog from its JSON; ``NoBuildError`` naming ``where`` and the field if it
        cannot be read."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise NoBuildError(
                f"{where}: catalog field '{field}': {first['msg']} "
                f"({exc.error_count()} problem(s)); rebuild with 'riskmap build'"
            ) from exc

    def source_layers(self) -> dict[str, str | None]:
        """Each source's key → the first layer of its kind holding its rows (where a popup
        finds a feature the source gave), None when no layer does."""
        return {
            key: next(
                (
                    lid
                    for lid, meta in self.layers.items()
                    if meta.kind == s.kind and key in meta.sources
                ),
                None,
            )
            for key, s in self.sources.items()
        }

    def vector_layers(self) -> dict[str, CatalogLayer]:
        """The layers served as features (every one but the rasters)."""
        return {k: v for k, v in self.layers.items() if v.kind != "raster"}
