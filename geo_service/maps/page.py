"""A map page built with Folium that loads every layer from the API by URL, never inlined.

The risk surface comes as the service's PNG tiles; communities as GeoJSON of the current view
(``/collections/community_risk/items?bbox=…``), reloaded when the view moves. Leaflet and its
CSS are the service's own copies (``/assets/…``): the only outside resource is the basemap,
and the data still draws when it fails.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from typing import Any

import folium
from branca.element import Element, MacroElement
from jinja2 import Template

from geo_service.maps.definitions import MapDefinition
from geo_service.maps.i18n import translator

#: The basemap (OpenStreetMap's standard tiles): the one outside resource of a page.
BASEMAP = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
BASEMAP_ATTRIBUTION = "© OpenStreetMap contributors"
#: Community risk classes: a light-to-dark sequence (readable with colour-vision deficiencies
#: and in greyscale), outlined in black so the points stand out on the surface.
CLASS_COLOURS = {
    "low": "#fde725",
    "medium": "#f89540",
    "high": "#cc4778",
    "very high": "#7e03a8",
    "no data": "#bdbdbd",
}
#: Most communities drawn for one view; the page says when there are more.
VIEW_LIMIT = 2000


class _Communities(MacroElement):
    """Loads community_risk for the view into a feature group, with popups and a count."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        (function () {
          var map = {{ this._parent.get_name() }};
          var group = {{ this.group.get_name() }};
          var url = {{ this.url|tojson }};
          var colours = {{ this.colours|tojson }};
          var status = document.getElementById("community-status");
          function esc(v) {
            return String(v === null || v === undefined ? "" : v).replace(/[&<>"']/g,
              function (c) { return "&#" + c.charCodeAt(0) + ";"; });
          }
          function popup(p) {
            var t = {{ this.t|tojson }};
            var rows = [[t.Score, p.score === null ? t["no data"] : Math.round(p.score)],
                        [t.Class, t[p.risk_class] || p.risk_class], [t.Country, p.country]];
            {{ this.factors|tojson }}.forEach(function (f) {
              var n = p[f + "_normalised"];
              rows.push([t[f] || f, n === null ? t["no data"] : n.toFixed(2)]);
            });
            return "<strong>" + esc(p.name) + "</strong><table>" + rows.map(function (r) {
              return "<tr><th>" + esc(r[0]) + "</th><td>" + esc(r[1]) + "</td></tr>";
            }).join("") + "</table>";
          }
          var layer = L.geoJSON(null, {
            pointToLayer: function (f, ll) {
              return L.circleMarker(ll, {radius: 5, weight: 1, color: "#000",
                fillColor: colours[f.properties.risk_class] || "#bdbdbd", fillOpacity: 0.9});
            },
            onEachFeature: function (f, l) { l.bindPopup(popup(f.properties)); }
          }).addTo(group);
          function load() {
            var b = map.getBounds();
            var bbox = [Math.max(b.getWest(), -180), Math.max(b.getSouth(), -90),
                        Math.min(b.getEast(), 180), Math.min(b.getNorth(), 90)]
                       .map(function (v) { return v.toFixed(5); }).join(",");
            fetch(url + "&bbox=" + bbox).then(function (r) { return r.json(); })
              .then(function (fc) {
                layer.clearLayers();
                layer.addData(fc);
                document.body.dataset.communities = fc.numberReturned;
                var t = {{ this.t|tojson }};
                var text = fc.numberReturned < fc.numberMatched ? t.partial : t.all;
                status.textContent = text.replace("{shown}", fc.numberReturned)
                  .replace("{total}", fc.numberMatched);
              });
          }
          map.on("moveend", load);
          load();
        })();
        {% endmacro %}
        """
    )

    def __init__(
        self, group: folium.FeatureGroup, url: str, factors: list[str], t: dict[str, str]
    ) -> None:
        super().__init__()
        self._name = "Communities"
        self.group = group
        self.url = url
        self.colours = CLASS_COLOURS
        self.factors = factors
        self.t = t


def _legend(title: str, _: Callable[[str], str]) -> Element:
    """Legend of the surface and the community classes, with the count of what is drawn."""
    stops = ", ".join(["#00224d", "#414d6b", "#7c7b78", "#bcaf6f", "#fde737"])
    classes = "".join(
        f'<div><span style="background:{c}"></span>{html.escape(_(name))}</div>'
        for name, c in CLASS_COLOURS.items()
    )
    return Element(
        f"""
        <style>
          .risk-legend {{position:absolute; z-index:1000; bottom:24px; left:10px;
            background:#fff; padding:6px 8px; border-radius:4px; font:12px/1.4 sans-serif;
            box-shadow:0 1px 4px rgba(0,0,0,.3); max-width:45vw}}
          .risk-legend .ramp {{height:10px; background:linear-gradient(to right, {stops})}}
          .risk-legend span {{display:inline-block; width:10px; height:10px; margin-right:4px;
            border:1px solid #000; border-radius:50%}}
        </style>
        <div class="risk-legend" role="region" aria-label="{html.escape(_("Legend"))}">
          <strong>{html.escape(title)}</strong>
          <div>{html.escape(_("Risk surface, 0 to 1"))}</div><div class="ramp"></div>
          <div>{html.escape(_("Communities by risk class"))}</div>{classes}
          <div id="community-status" aria-live="polite"></div>
        </div>
        """
    )


def build_page(
    definition: MapDefinition,
    base: str,
    lang: str,
    raster_zoom: int,
    attribution: str,
    factors: list[str],
) -> str:
    """The page's HTML: Leaflet from ``base``/assets, data from ``base``'s API."""
    _ = translator(lang)
    m = folium.Map(
        location=list(definition.centre),
        zoom_start=definition.zoom,
        tiles=None,
        control_scale=True,
        prefer_canvas=True,
    )
    m.default_js = [("leaflet", f"{base}assets/leaflet/dist/leaflet.js")]
    m.default_css = [("leaflet_css", f"{base}assets/leaflet/dist/leaflet.css")]
    folium.TileLayer(
        tiles=BASEMAP, attr=BASEMAP_ATTRIBUTION, name="OpenStreetMap", max_zoom=18
    ).add_to(m)
    if "risk_surface" in definition.layers:
        folium.TileLayer(
            tiles=f"{base}tiles/risk_surface/{{z}}/{{x}}/{{y}}.png",
            attr=attribution,
            name=_("Risk surface"),
            overlay=True,
            opacity=0.75,
            max_native_zoom=raster_zoom,
            max_zoom=18,
        ).add_to(m)
    if "community_risk" in definition.layers:
        group = folium.FeatureGroup(name=_("Communities"), overlay=True).add_to(m)
        url = f"{base}collections/community_risk/items?limit={VIEW_LIMIT}"
        words = ["Score", "Class", "Country", *CLASS_COLOURS]
        t = {w: _(w) for w in words}
        t.update({f: _(f.replace("_", " ")) for f in factors})
        t["all"] = _("{total} communities")
        t["partial"] = _("{shown} of {total} communities: zoom in for all")
        m.add_child(_Communities(group, url, factors, t))
    folium.LayerControl(collapsed=False).add_to(m)
    root = m.get_root()
    root.html.add_child(_legend(definition.title.get(lang), _))
    root.header.add_child(
        Element(
            f"<title>{_escape(definition.title.get(lang))}</title>"
            f'<meta name="description" content="{_escape(definition.description.get(lang))}">'
        )
    )
    html = root.render()
    return html.replace("<html>", f'<html lang="{lang}">', 1)


def _escape(text: str) -> str:
    return json.dumps(text)[1:-1].replace("<", "&lt;").replace('"', "&quot;")


def factor_names(params: dict[str, Any]) -> list[str]:
    """The factors of the build's risk model, in order."""
    return list(params.get("factors", {}))
