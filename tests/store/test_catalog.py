"""The build's catalog as the service reads it: every field the pages use, typed; a catalog
that lacks one is refused when the build is opened, naming the field."""

from __future__ import annotations

import copy

import pytest

from geo_service.build import BuildResult
from geo_service.errors import NoBuildError
from geo_service.store.catalog import BuildCatalog


def test_the_session_catalog_reads_whole(built: BuildResult) -> None:
    catalog = BuildCatalog.read(built.catalog, "session build")
    assert catalog.build_id == built.build_id
    assert set(catalog.layers) == set(built.catalog["layers"])
    incidents = catalog.layers["incidents"]
    assert incidents.kind == "incidents" and incidents.public is not None
    public = incidents.as_seen(public=True)
    assert public.file == built.catalog["layers"]["incidents"]["public"]["file"]
    assert public.count < incidents.count and public.public is None
    assert incidents.as_seen(public=False).count == incidents.count
    assert "risk_surface" not in catalog.vector_layers()
    assert catalog.layers["risk_surface"].cell_m and catalog.basemap is not None
    for key, source in catalog.sources.items():
        assert source.licence and source.publisher, key


@pytest.mark.parametrize(
    ("path", "field"),
    [(("layers", "incidents", "title"), "layers.incidents.title"), (("created",), "created")],
)
def test_a_catalog_missing_a_field_is_refused_naming_it(
    built: BuildResult, path: tuple[str, ...], field: str
) -> None:
    broken = copy.deepcopy(built.catalog)
    holder = broken
    for key in path[:-1]:
        holder = holder[key]
    del holder[path[-1]]
    with pytest.raises(NoBuildError, match=rf"build x: catalog field '{field}'"):
        BuildCatalog.read(broken, "build x")
