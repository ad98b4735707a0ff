"""Canonical layers → risk layers: run every factor, combine, derive the public aggregates.

The one entry point ``build.py`` calls. It reads nothing but what it is given (the canonical
layers, the reference files named in the catalog and the parameters), so the same inputs give
the same layers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pyogrio
import shapely

from geo_service.catalog import SourceCatalog
from geo_service.ingest.population import PopulationGrid
from geo_service.publication import Policy, Publication
from geo_service.risk import FACTORS
from geo_service.risk.base import CoverageArea, RiskInputs
from geo_service.risk.collector import frozen
from geo_service.risk.combine import combine
from geo_service.risk.concession_risk import (
    CommunitiesAround,
    concession_risk,
    footprint_growth,
)
from geo_service.risk.coverage import coverage_layer
from geo_service.risk.exposure import UnitMembers, people_exposed
from geo_service.risk.exposure_weights import ExposureWeights
from geo_service.risk.generalise import HexTotals, risk_hex
from geo_service.risk.params import MODEL_VERSION, RiskParams
from geo_service.risk.partition import Partitioned, compute_partitioned
from geo_service.risk.runner import Runner
from geo_service.risk.surface import Surface, compute_surface
from geo_service.schemas import Kind

#: Titles of the layers the risk model adds to a build.
TITLES = {
    "community_risk": "Community risk scores",
    "tailings_consequence": "Tailings dams: run-out and indicative consequence",
    "concession_risk": "Concessions: incidents, people and dams around them",
    "risk_hex": "Risk aggregated to H3 cells (public)",
    "coverage": "Where each risk factor has evidence",
    "risk_units": "Official units: people exposed, communities by class and scores",
    "risk_surface": "Risk surface (0–1, Web Mercator grid)",
}


@dataclass
class RiskOutput:
    """Derived layers and what the build metadata records about them."""

    layers: dict[str, gpd.GeoDataFrame]
    metadata: dict[str, Any] = field(default_factory=dict)
    #: The factors evaluated on a grid (``surface.py``); None when there is no evidence.
    surface: Surface | None = None


def coverage_of(
    catalog: SourceCatalog, layers: dict[Kind, gpd.GeoDataFrame]
) -> tuple[dict[Kind, CoverageArea], dict[Kind, list[str]]]:
    """Coverage and notes per evidence kind: the union of what its sources declare.

    A source declares countries, an outline (``polygon``) or a ``bbox``; one that declares none
    covers the countries its rows lie in, so a quick extract without a coverage table still
    says where it looked rather than nowhere. ``countries = []`` declares that it covers
    nowhere (a list of notable tailings failures says nothing of violence anywhere).
    """
    countries: dict[Kind, set[str]] = {}
    areas: dict[Kind, list[tuple[str, shapely.Geometry]]] = {}
    notes: dict[Kind, list[str]] = {}
    for entry in catalog.sources:
        declared = set(entry.coverage.countries)
        area = entry.coverage.area()
        if area is not None:
            areas.setdefault(entry.kind, []).append((entry.key, area))
        elif "countries" not in entry.coverage.model_fields_set and entry.kind in layers:
            layer = layers[entry.kind]
            declared = set(layer.loc[layer["source"] == entry.key, "country"].dropna())
        countries.setdefault(entry.kind, set()).update(declared)
        if entry.coverage.note:
            notes.setdefault(entry.kind, []).append(f"{entry.title}: {entry.coverage.note}")
    coverage = {
        kind: CoverageArea(
            frozenset(codes),
            shapely.union_all([a for _, a in areas[kind]]) if kind in areas else None,
            tuple(key for key, _ in areas.get(kind, [])),
        )
        for kind, codes in countries.items()
    }
    return coverage, notes


def read_rivers(catalog: SourceCatalog) -> gpd.GeoDataFrame | None:
    """The catalog's river centrelines, as one layer."""
    frames = [pyogrio.read_dataframe(p) for p in catalog.reference.rivers]
    if not frames:
        return None
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs="EPSG:4326")


def read_countries(catalog: SourceCatalog) -> gpd.GeoDataFrame:
    """Country outlines keyed by ISO alpha-3 (Natural Earth's own code where it has no ISO one)."""
    frames = []
    for path in catalog.reference.countries:
        gdf = pyogrio.read_dataframe(path, columns=["ISO_A3", catalog.reference.country_field])
        iso = gdf["ISO_A3"].where(gdf["ISO_A3"] != "-99", gdf[catalog.reference.country_field])
        frames.append(gpd.GeoDataFrame({"iso3": iso}, geometry=gdf.geometry, crs="EPSG:4326"))
    if not frames:
        return gpd.GeoDataFrame({"iso3": []}, geometry=[], crs="EPSG:4326")
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs="EPSG:4326")


def risk_inputs(
    layers: dict[Kind, gpd.GeoDataFrame], catalog: SourceCatalog
) -> tuple[RiskInputs, dict[Kind, list[str]]]:
    """What the factors and the surface read (the layers, the catalog's rivers, each kind's
    coverage), and the coverage notes per kind; ``layers`` must hold the communities."""
    coverage, notes = coverage_of(catalog, layers)
    inputs = RiskInputs(
        communities=layers[Kind.communities].reset_index(drop=True),
        concessions=layers.get(Kind.concessions),
        tailings_dams=layers.get(Kind.tailings_dams),
        incidents=layers.get(Kind.incidents),
        rivers=read_rivers(catalog),
        coverage=coverage,
    )
    return inputs, notes


def partitioned_model(
    inputs: RiskInputs,
    params: RiskParams,
    runner: Runner | None = None,
    publication: Publication | None = None,
    units: gpd.GeoDataFrame | None = None,
) -> Partitioned:
    """Every factor, the communities around each concession, the share of each community's
    people every exposure factor reaches, the public communities' ``risk_hex`` totals and
    the official units they lie in, a partition of the communities at a time, each with the
    evidence within reach (``partition.py``)."""
    hidden = publication is not None and Kind.communities in publication.restricted
    return compute_partitioned(
        list(FACTORS.values()),
        inputs,
        params,
        runner,
        steps=[
            (CommunitiesAround(), params.concession_risk),
            (ExposureWeights(), params),
            (HexTotals(hidden), params),
            (UnitMembers(units), None),
        ],
    )


def run_risk(
    layers: dict[Kind, gpd.GeoDataFrame],
    catalog: SourceCatalog,
    params: RiskParams,
    publication: Publication | None = None,
    grids: list[PopulationGrid] | None = None,
    runner: Runner | None = None,
    scratch: Path | None = None,
) -> RiskOutput:
    """Every risk layer from the canonical layers of one build (the surface's tiles computed
    by ``runner``, in this process by default; its regions on disk in ``scratch`` if given).

    ``layers`` is the evidence as the model may read it (``Publication.evidence``: restricted
    rows at their cell's centre); ``risk_hex`` summarises the public views ``publication``
    makes of them and their areas (restricted rows as cells), so it says nothing they do not.
    """
    with frozen():  # the evidence is loaded: no full collection walks it again
        return _run(layers, catalog, params, publication, grids, runner, scratch)


def _run(
    layers: dict[Kind, gpd.GeoDataFrame],
    catalog: SourceCatalog,
    params: RiskParams,
    publication: Publication | None,
    grids: list[PopulationGrid] | None,
    runner: Runner | None,
    scratch: Path | None,
) -> RiskOutput:
    if Kind.communities not in layers:
        return RiskOutput({}, {"skipped": "no communities layer: nothing to score"})
    inputs, notes = risk_inputs(layers, catalog)
    coverage = inputs.coverage
    publication = publication or Publication({}, Policy())
    units = layers.get(Kind.units)
    partitioned = partitioned_model(inputs, params, runner, publication, units)
    results = partitioned.results
    community_risk = combine(inputs.communities, results, params)
    derived: dict[str, gpd.GeoDataFrame] = {"community_risk": community_risk}
    for r in results:
        derived.update(r.layers)
    reference = next(
        (r.metadata.get("reference_date") for r in results if r.metadata.get("reference_date")),
        None,
    )
    derived["concession_risk"] = concession_risk(
        inputs.concessions,
        inputs.incidents,
        inputs.communities,
        inputs.tailings_dams,
        pd.Timestamp(reference) if reference else None,
        params.concession_risk,
        coverage,
        around=partitioned.sums[CommunitiesAround.name],
    )
    # What the public may see: the public rows, and the restricted ones as their cells.
    public_communities = publication.seen_by_public("community_risk", community_risk)
    community_cells = publication.areas("community_risk", community_risk)
    public_incidents, incident_cells = None, None
    if inputs.incidents is not None:
        public_incidents = publication.seen_by_public("incidents", inputs.incidents)
        incident_cells = publication.areas("incidents", inputs.incidents)
    derived["risk_hex"] = risk_hex(
        public_communities,
        community_cells,
        public_incidents,
        incident_cells,
        params.hex,
        partitioned.tables[HexTotals.name],
    )
    exposure = people_exposed(
        inputs,
        community_risk,
        units,
        grids or [],
        params,
        public_incidents,
        partitioned.values[ExposureWeights.name],
        runner,
        partitioned.tables[UnitMembers.name],
    )
    for name, values in exposure.community_columns.items():
        community_risk[name] = values
    if exposure.units is not None:
        derived["risk_units"] = exposure.units
    countries = read_countries(catalog)
    derived["coverage"] = coverage_layer(coverage, notes, countries)
    has_evidence = any(
        layer is not None and len(layer)
        for layer in (inputs.concessions, inputs.tailings_dams, inputs.incidents)
    )
    surface = (
        compute_surface(inputs, params, params.surface, countries, runner=runner, scratch=scratch)
        if has_evidence
        else None
    )
    metadata = {
        "model_version": MODEL_VERSION,
        "parameters": params.record(),
        "parameter_hash": params.digest(),
        "factors": {r.name: r.metadata for r in results},
        "community_partitions": partitioned.metadata,
        "coverage": {k.value: v.record() for k, v in coverage.items()},
        "classes": community_risk["risk_class"].value_counts().to_dict(),
        "confidence": community_risk["confidence"].value_counts().to_dict(),
        "surface": surface.metadata if surface is not None else None,
        "concession_risk": {
            "footprint_growth": footprint_growth(inputs.concessions, params.concession_risk)
        },
        "exposure": exposure.metadata,
    }
    return RiskOutput(derived, metadata, surface)
