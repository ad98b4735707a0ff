"""Layer definitions (``layers/layers.toml``): how each layer is drawn, once for everything.

A definition gives a layer's name, symbol, colours, classes, legend lines and popup fields in
every language. The page's script config, its legend, the server-drawn picture's marks and
legend all come from here; the symbols' outlines are one set of polygons, written as SVG for
the browser and drawn by Pillow for the picture. The file is checked when read, so a wrong
field or colour is an error naming the layer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from geo_service.maps.definitions import Texts, layers_file, read_entries
from geo_service.render.symbols import svg_path

#: How the page draws a layer; ``points`` is any point layer of the API.
DRAWERS = ("surface", "communities", "sites", "dams", "incidents", "points")

Symbol = Literal["circle", "triangle", "diamond", "square", "hexagon"]
HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


def _colour(value: str) -> str:
    if not HEX.match(value):
        raise ValueError(f"colour {value!r} is not #rrggbb")
    return value.lower()


class ClassStyle(BaseModel):
    """One class: the field's value, its fill and its label."""

    model_config = ConfigDict(extra="forbid")

    value: str
    colour: str
    label: Texts

    _check = field_validator("colour")(classmethod(lambda cls, v: _colour(v)))


class Classes(BaseModel):
    """The field that picks a feature's colour, and its classes, lowest first."""

    model_config = ConfigDict(extra="forbid")

    field: str
    values: list[ClassStyle] = Field(min_length=1)


class Other(BaseModel):
    """A feature whose value is none of the classes (no data)."""

    model_config = ConfigDict(extra="forbid")

    colour: str = "#ffffff"
    mark: str | None = None
    label: Texts

    _check = field_validator("colour")(classmethod(lambda cls, v: _colour(v)))


class Note(BaseModel):
    """A further line of the legend: a mark the stylesheet draws, and a text."""

    model_config = ConfigDict(extra="forbid")

    text: Texts
    mark: str | None = None
    id: str | None = None
    #: Shown only on maps whose filter on the layer (``where``) keeps these values.
    when: dict[str, str] = {}


class FilterGroup(BaseModel):
    """One choice of a layer's filter: a label, and the field's values it keeps."""

    model_config = ConfigDict(extra="forbid")

    label: Texts
    values: list[str] = Field(min_length=1)


class Filter(BaseModel):
    """A choice the reader makes of which features to draw, by one field (the features of
    no group are "other")."""

    model_config = ConfigDict(extra="forbid")

    field: str
    label: Texts
    groups: list[FilterGroup] = Field(min_length=1)
    other: Texts


class LayerDefinition(BaseModel):
    """How one layer is drawn on the page and in the picture."""

    model_config = ConfigDict(extra="forbid")

    id: str
    draw: Literal["surface", "raster", "communities", "sites", "dams", "incidents", "points"] = (
        "points"
    )
    name: Texts
    heading: Texts | None = None
    symbol: Symbol = "circle"
    size: int = Field(12, ge=6, le=40)
    colour: str = "#ffffff"
    outline: str = "#111111"
    classes: Classes | None = None
    other: Other | None = None
    notes: list[Note] = Field(default_factory=list)
    properties: list[str] = Field(default_factory=lambda: ["name"])
    popup: list[str] = Field(default_factory=list)
    fields: dict[str, Texts] = Field(default_factory=dict)
    #: Field → a value as its publisher wrote it → that value in every language.
    values: dict[str, dict[str, Texts]] = Field(default_factory=dict)
    filter: Filter | None = None
    maps: list[str] = Field(default_factory=list)
    #: The page draws the layer from this zoom on (dense layers: villages).
    min_zoom: int = Field(0, ge=0, le=18)

    _check = field_validator("colour", "outline")(classmethod(lambda cls, v: _colour(v)))

    @model_validator(mode="after")
    def _labelled(self) -> LayerDefinition:
        missing = [f for f in self.popup if f not in self.fields]
        if missing:
            raise ValueError(f"popup field(s) {', '.join(missing)} have no label under fields")
        return self

    def colour_of(self, value: Any) -> str:
        """The fill of a feature whose class field is ``value``."""
        if self.classes is not None:
            for c in self.classes.values:
                if c.value == value:
                    return c.colour
            return self.other.colour if self.other is not None else self.colour
        return self.colour

    def notes_kept(self, where: dict[str, str]) -> list[Note]:
        """The legend's notes on a map whose filter on this layer is ``where``."""
        return [n for n in self.notes if all(where.get(k, v) == v for k, v in n.when.items())]

    def heading_of(self, lang: str) -> str:
        """The legend's heading in ``lang``."""
        return (self.heading or self.name).get(lang)

    def script(self, lang: str) -> dict[str, Any]:
        """What the page's script needs to draw the layer, in ``lang``."""
        classes = self.classes.values if self.classes else []
        return {
            "draw": self.draw,
            "name": self.name.get(lang),
            "symbol": self.symbol,
            "path": svg_path(self.symbol),
            "size": self.size,
            "colour": self.colour,
            "outline": self.outline,
            "field": self.classes.field if self.classes else None,
            "classes": [c.value for c in classes],
            "colours": {c.value: c.colour for c in classes},
            "labels": {c.value: c.label.get(lang) for c in classes},
            "other": (
                {"colour": self.other.colour, "label": self.other.label.get(lang)}
                if self.other
                else None
            ),
            "properties": list(
                dict.fromkeys(
                    [
                        *self.properties,
                        *([self.classes.field] if self.classes else []),
                        *([self.filter.field] if self.filter else []),
                    ]
                )
            ),
            "popup": self.popup,
            "minZoom": self.min_zoom,
            "fields": {k: v.get(lang) for k, v in self.fields.items()},
            "values": {
                k: {value: text.get(lang) for value, text in words.items()}
                for k, words in self.values.items()
            },
            "filter": (
                {
                    "field": self.filter.field,
                    "groups": [g.values for g in self.filter.groups],
                }
                if self.filter
                else None
            ),
        }


@lru_cache(maxsize=8)
def definitions(maps_file: Path = Path("layers/maps.toml")) -> dict[str, LayerDefinition]:
    """The layer definitions that go with a maps file (``layers.toml`` beside it), read once."""
    return load_layers(layers_file(Path(maps_file)))


def words(styles: Mapping[str, LayerDefinition], lang: str) -> tuple[dict, dict]:
    """Every definition's field labels (field → label) and the words of its values (field →
    value → words, classes included), in ``lang``: what a full record shows of them."""
    labels: dict[str, str] = {}
    values: dict[str, dict[str, str]] = {}
    for style in styles.values():
        for name, text in style.fields.items():
            labels.setdefault(name, text.get(lang))
        for name, texts in style.values.items():
            values.setdefault(name, {}).update({v: t.get(lang) for v, t in texts.items()})
        if style.classes is not None:
            values.setdefault(style.classes.field, {}).update(
                {c.value: c.label.get(lang) for c in style.classes.values}
            )
    return labels, values


def load_layers(path: Path) -> dict[str, LayerDefinition]:
    """Every layer definition of the file, or ``CatalogError`` naming the layer and field."""
    return read_entries(path, "layer", lambda key, value: LayerDefinition(id=key, **value))
