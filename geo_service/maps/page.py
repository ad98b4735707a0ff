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
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import folium
from branca.element import Element, MacroElement
from folium.plugins import Fullscreen
from jinja2 import Template

from geo_service.maps.definitions import MapDefinition
from geo_service.maps.i18n import translator


@dataclass(frozen=True)
class Basemap:
    """The outside basemap: the one outside resource of a page (``xyzservices`` provider)."""

    name: str
    url: str
    attribution: str
    max_zoom: int

    @classmethod
    def named(cls, name: str) -> Basemap:
        """A provider of ``xyzservices`` by name, e.g. ``OpenStreetMap.Mapnik``."""
        import xyzservices.providers as xyz

        try:
            provider = xyz.query_name(name)
        except ValueError as exc:
            raise ValueError(f"unknown basemap {name!r}: see xyzservices' providers") from exc
        return cls(
            name=name,
            url=provider.build_url(),
            attribution=provider.get("attribution", ""),
            max_zoom=int(provider.get("max_zoom", 18)),
        )


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


@dataclass(frozen=True)
class View:
    """What a share link reopens: centre, zoom and the layers shown."""

    lat: float
    lon: float
    zoom: int
    layers: tuple[str, ...]


class _ViewState(MacroElement):
    """Keeps the view in the page's URL (a share link) and the embed snippet up to date."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        (function () {
          var map = {{ this._parent.get_name() }};
          window.riskMap = map;
          var layers = { {% for id, layer in this.layers.items() %}
            {{ id|tojson }}: {{ layer.get_name() }},{% endfor %} };
          var t = {{ this.t|tojson }};
          function query() {
            var c = map.getCenter();
            var q = new URLSearchParams(location.search);
            q.set("lat", c.lat.toFixed(4));
            q.set("lon", c.lng.toFixed(4));
            q.set("z", map.getZoom());
            q.set("layers", Object.keys(layers).filter(function (k) {
              return map.hasLayer(layers[k]); }).join(","));
            return q.toString();
          }
          function snippet(q) {
            var src = {{ this.embed_url|tojson }} + "?" + q;
            return '<div style="position:relative;width:100%;padding-bottom:66%;height:0">'
              + '<iframe src="' + src + '" title="' + t.title.replace(/"/g, "&quot;")
              + '" style="position:absolute;top:0;left:0;width:100%;height:100%;border:0"'
              + ' loading="lazy" allowfullscreen></iframe></div>'
              + '<p style="font:12px sans-serif">' + t.credit + "</p>";
          }
          function update() {
            var q = query();
            history.replaceState(null, "", location.pathname + "?" + q);
            var box = document.getElementById("embed-code");
            if (box) { box.value = snippet(q); }
          }
          {% if this.embed_button %}
          var Embed = L.Control.extend({
            options: {position: "topleft"},
            onAdd: function () {
              var div = L.DomUtil.create("div", "leaflet-bar embed-control");
              var button = L.DomUtil.create("button", "", div);
              button.type = "button";
              button.textContent = t.embed;
              button.setAttribute("aria-expanded", "false");
              var panel = L.DomUtil.create("div", "embed-panel", div);
              panel.hidden = true;
              var label = L.DomUtil.create("label", "", panel);
              label.textContent = t.copy;
              label.htmlFor = "embed-code";
              var box = L.DomUtil.create("textarea", "", panel);
              box.id = "embed-code";
              box.rows = 5;
              box.readOnly = true;
              L.DomEvent.disableClickPropagation(div);
              L.DomEvent.disableScrollPropagation(div);
              button.addEventListener("click", function () {
                panel.hidden = !panel.hidden;
                button.setAttribute("aria-expanded", String(!panel.hidden));
                if (!panel.hidden) { box.value = snippet(query()); box.select(); }
              });
              return div;
            }
          });
          new Embed().addTo(map);
          {% endif %}
          map.on("moveend overlayadd overlayremove", update);
        })();
        {% endmacro %}
        """
    )

    def __init__(
        self, layers: dict[str, Any], embed_url: str, t: dict[str, str], embed_button: bool
    ) -> None:
        super().__init__()
        self._name = "ViewState"
        self.layers = layers
        self.embed_url = embed_url
        self.t = t
        self.embed_button = embed_button


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
          var hexUrl = {{ this.hex_url|tojson }};
          function hexColour(score) {
            if (score === null || score === undefined) { return colours["no data"]; }
            var steps = {{ this.thresholds|tojson }};
            var names = ["low", "medium", "high", "very high"];
            var k = 0;
            for (var i = 0; i < steps.length; i++) { if (score >= steps[i]) { k = i + 1; } }
            return colours[names[Math.min(k, 3)]];
          }
          var hexes = L.geoJSON(null, {
            // Cells that only hold incidents (or fewer than the minimum of communities,
            // suppressed) say nothing about communities: left out.
            filter: function (f) { return f.properties.communities !== null; },
            style: function (f) {
              return {color: "#333", weight: 0.5, fillOpacity: 0.7,
                      fillColor: hexColour(f.properties.max_score)};
            },
            onEachFeature: function (f, l) {
              var p = f.properties, t = {{ this.t|tojson }};
              l.bindPopup("<table><tr><th>" + esc(t.Communities) + "</th><td>"
                + esc(p.communities) + "</td></tr><tr><th>" + esc(t.max) + "</th><td>"
                + esc(p.max_score === null ? t["no data"] : Math.round(p.max_score))
                + "</td></tr></table>");
            }
          }).addTo(group);
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
                var t = {{ this.t|tojson }};
                layer.clearLayers();
                hexes.clearLayers();
                document.body.dataset.communities = fc.numberReturned;
                if (fc.numberReturned >= fc.numberMatched) {
                  layer.addData(fc);
                  document.body.dataset.grouped = "0";
                  status.textContent = t.all.replace("{total}", fc.numberMatched);
                  return;
                }
                // Too many to draw one by one: the public H3 aggregate of the view instead
                // (small counts suppressed), so any number of communities stays smooth.
                var z = map.getZoom();
                var res = z <= 5 ? 3 : (z <= 8 ? 5 : 7);
                fetch(hexUrl + "&resolution=" + res + "&bbox=" + bbox)
                  .then(function (r) { return r.json(); })
                  .then(function (cells) {
                    hexes.addData(cells);
                    document.body.dataset.grouped = String(cells.numberReturned);
                    status.textContent = t.grouped.replace("{total}", fc.numberMatched);
                  });
              });
          }
          map.on("moveend", load);
          load();
        })();
        {% endmacro %}
        """
    )

    def __init__(
        self,
        group: folium.FeatureGroup,
        url: str,
        factors: list[str],
        t: dict[str, str],
        hex_url: str,
        thresholds: list[float],
    ) -> None:
        super().__init__()
        self._name = "Communities"
        self.hex_url = hex_url
        self.thresholds = thresholds
        self.group = group
        self.url = url
        self.colours = CLASS_COLOURS
        self.factors = factors
        self.t = t


class _Fallback(MacroElement):
    """The build's offline basemap in a pane beneath the tiles: shows wherever tiles fail."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        (function () {
          var map = {{ this._parent.get_name() }};
          map.createPane("fallback").style.zIndex = 150;
          var styles = {
            land: {color: "#9e9e9e", weight: 0.8, fillColor: "#f2efe9", fillOpacity: 1},
            lake: {color: "#8fb8cf", weight: 0.5, fillColor: "#c6dbe8", fillOpacity: 1},
            river: {color: "#8fb8cf", weight: 1, fill: false}
          };
          map.getContainer().style.background = "#c6dbe8";
          fetch({{ this.url|tojson }}).then(function (r) { return r.json(); })
            .then(function (fc) {
              L.geoJSON(fc, {pane: "fallback", interactive: false,
                style: function (f) { return styles[f.properties.kind]; }}).addTo(map);
              document.body.dataset.basemap = fc.features.length;
            });
        })();
        {% endmacro %}
        """
    )

    def __init__(self, url: str) -> None:
        super().__init__()
        self._name = "Fallback"
        self.url = url


class _Incidents(MacroElement):
    """Incidents of the view within a range of years, with a time filter and a live count."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        (function () {
          var map = {{ this._parent.get_name() }};
          var group = {{ this.group.get_name() }};
          var url = {{ this.url|tojson }};
          var t = {{ this.t|tojson }};
          function esc(v) {
            return String(v === null || v === undefined ? "" : v).replace(/[&<>"']/g,
              function (c) { return "&#" + c.charCodeAt(0) + ";"; });
          }
          var layer = L.geoJSON(null, {
            pointToLayer: function (f, ll) {
              return L.circleMarker(ll, {radius: 4, weight: 1, color: "#fff",
                fillColor: "#222", fillOpacity: 0.85});
            },
            onEachFeature: function (f, l) {
              var p = f.properties;
              l.bindPopup("<strong>" + esc(p.date) + "</strong><br>" + esc(p.type)
                + "<br>" + esc(t.deaths) + ": " + esc(p.fatalities)
                + "<br><small>" + esc(p.source) + "</small>");
            }
          }).addTo(group);
          var Filter = L.Control.extend({
            options: {position: "bottomright"},
            onAdd: function () {
              var div = L.DomUtil.create("div", "time-filter");
              div.innerHTML = '<fieldset><legend>' + esc(t.title) + '</legend>'
                + '<label>' + esc(t.from) + ' <input type="range" id="incidents-from"></label>'
                + '<label>' + esc(t.to) + ' <input type="range" id="incidents-to"></label>'
                + '<output id="incidents-status" aria-live="polite"></output></fieldset>';
              L.DomEvent.disableClickPropagation(div);
              L.DomEvent.disableScrollPropagation(div);
              return div;
            }
          });
          new Filter().addTo(map);
          var from = document.getElementById("incidents-from");
          var to = document.getElementById("incidents-to");
          [from, to].forEach(function (input) {
            input.min = {{ this.first }}; input.max = {{ this.last }}; input.step = 1;
          });
          var q = new URLSearchParams(location.search);
          from.value = q.get("from") || {{ this.first }};
          to.value = q.get("to") || {{ this.last }};
          var status = document.getElementById("incidents-status");
          function load() {
            if (Number(from.value) > Number(to.value)) { to.value = from.value; }
            var b = map.getBounds();
            var bbox = [Math.max(b.getWest(), -180), Math.max(b.getSouth(), -90),
                        Math.min(b.getEast(), 180), Math.min(b.getNorth(), 90)]
                       .map(function (v) { return v.toFixed(5); }).join(",");
            var span = from.value + "-01-01/" + to.value + "-12-31";
            fetch(url + "&bbox=" + bbox + "&datetime=" + span)
              .then(function (r) { return r.json(); })
              .then(function (fc) {
                layer.clearLayers();
                layer.addData(fc);
                document.body.dataset.incidents = fc.numberReturned;
                status.textContent = t.count.replace("{shown}", fc.numberReturned)
                  .replace("{total}", fc.numberMatched).replace("{from}", from.value)
                  .replace("{to}", to.value);
                var s = new URLSearchParams(location.search);
                s.set("from", from.value); s.set("to", to.value);
                history.replaceState(null, "", location.pathname + "?" + s.toString());
              });
          }
          from.addEventListener("input", load);
          to.addEventListener("input", load);
          map.on("moveend", load);
          load();
        })();
        {% endmacro %}
        """
    )

    def __init__(
        self, group: folium.FeatureGroup, url: str, t: dict[str, str], first: int, last: int
    ) -> None:
        super().__init__()
        self._name = "Incidents"
        self.group = group
        self.url = url
        self.t = t
        self.first = first
        self.last = last


def _legend(title: str, _: Callable[[str], str], incidents: bool = False) -> Element:
    """Legend of the surface and the community classes, with the count of what is drawn."""
    stops = ", ".join(["#00224d", "#414d6b", "#7c7b78", "#bcaf6f", "#fde737"])
    classes = "".join(
        f'<div><span style="background:{c}"></span>{html.escape(_(name))}</div>'
        for name, c in CLASS_COLOURS.items()
    )
    incident_row = (
        f'<div><span style="background:#222;border-color:#fff"></span>'
        f"{html.escape(_('Incidents'))}</div>"
        if incidents
        else ""
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
          <details id="legend-details" open>
            <summary><strong>{html.escape(title)}</strong></summary>
            <div>{html.escape(_("Risk surface, 0 to 1"))}</div><div class="ramp"></div>
            <div>{html.escape(_("Communities by risk class"))}</div>{classes}
            {incident_row}
          </details>
          <div id="community-status" aria-live="polite"></div>
        </div>
        <style>
          @media (max-width: 600px) {{
            .risk-legend {{bottom:40px; max-width:70vw; font-size:11px}}
            .leaflet-control-attribution {{font-size:9px; max-height:3.2em; overflow:hidden}}
            .leaflet-control-attribution:hover {{max-height:none}}
            .time-filter input {{width:90px}}
          }}
        </style>
        <script>
          // On a phone the map comes first: the legend starts folded (a tap opens it).
          if (window.matchMedia("(max-width: 600px)").matches) {{
            document.getElementById("legend-details").removeAttribute("open");
          }}
        </script>
        """
    )


def build_page(
    definition: MapDefinition,
    base: str,
    lang: str,
    raster_zoom: int,
    attribution: str,
    factors: list[str],
    view: View | None = None,
    embed: bool = False,
    incident_years: tuple[int, int] | None = None,
    basemap: Basemap | None = None,
    class_thresholds: tuple[float, ...] = (25.0, 50.0, 75.0),
) -> str:
    """The page's HTML: Leaflet from ``base``/assets, data from ``base``'s API.

    ``view`` reopens a shared view; ``embed`` is the chromeless page for iframes (a collapsed
    layer control, a link to the full map, no embed button).
    """
    _ = translator(lang)
    view = view or View(
        definition.centre[0], definition.centre[1], definition.zoom, tuple(definition.layers)
    )
    m = folium.Map(
        location=[view.lat, view.lon],
        zoom_start=view.zoom,
        tiles=None,
        control_scale=True,
        prefer_canvas=True,
    )
    m.default_js = [("leaflet", f"{base}assets/leaflet/dist/leaflet.js")]
    m.default_css = [("leaflet_css", f"{base}assets/leaflet/dist/leaflet.css")]

    m.add_child(_Fallback(f"{base}basemap.json"))
    basemap = basemap or Basemap.named("OpenStreetMap.Mapnik")
    folium.TileLayer(
        tiles=basemap.url,
        attr=f"{html.escape(basemap.attribution)}; Natural Earth",
        name=basemap.name.split(".")[0],
        max_zoom=18,
        max_native_zoom=basemap.max_zoom,
    ).add_to(m)
    overlays: dict[str, Any] = {}
    if "risk_surface" in definition.layers:
        overlays["risk_surface"] = folium.TileLayer(
            tiles=f"{base}tiles/risk_surface/{{z}}/{{x}}/{{y}}.png",
            attr=attribution,
            name=_("Risk surface"),
            overlay=True,
            opacity=0.75,
            max_native_zoom=raster_zoom,
            max_zoom=18,
            show="risk_surface" in view.layers,
        ).add_to(m)
    if "community_risk" in definition.layers:
        group = folium.FeatureGroup(
            name=_("Communities"), overlay=True, show="community_risk" in view.layers
        ).add_to(m)
        overlays["community_risk"] = group
        wanted = ["name", "score", "risk_class", "country", *(f"{f}_normalised" for f in factors)]
        url = (
            f"{base}collections/community_risk/items?limit={VIEW_LIMIT}"
            f"&properties={','.join(wanted)}"
        )
        words = ["Score", "Class", "Country", *CLASS_COLOURS]
        t = {w: _(w) for w in words}
        t.update({f: _(f.replace("_", " ")) for f in factors})
        t["all"] = _("{total} communities")
        t["partial"] = _("{shown} of {total} communities: zoom in for all")
        t["grouped"] = _("{total} communities, grouped in hexagons: zoom in for each one")
        t["Communities"] = _("Communities")
        t["max"] = _("Highest score")
        hex_url = f"{base}collections/risk_hex/items?limit=10000&properties=communities,max_score"
        m.add_child(_Communities(group, url, factors, t, hex_url, list(class_thresholds)))
    if "incidents" in definition.layers and incident_years is not None:
        group = folium.FeatureGroup(
            name=_("Incidents"), overlay=True, show="incidents" in view.layers
        ).add_to(m)
        overlays["incidents"] = group
        t = {
            "title": _("Incidents by year"),
            "from": _("From"),
            "to": _("To"),
            "deaths": _("Deaths"),
            "count": _("{shown} of {total} incidents, {from}–{to}"),
        }
        url = (
            f"{base}collections/incidents/items?limit={VIEW_LIMIT}"
            "&properties=date,type,fatalities,source"
        )
        m.add_child(_Incidents(group, url, t, *incident_years))
    full = Fullscreen(
        position="topleft", title=_("Full screen"), title_cancel=_("Exit full screen")
    )
    full.default_js = [("fullscreen", f"{base}assets/leaflet.fullscreen/Control.FullScreen.js")]
    full.default_css = [
        ("fullscreen_css", f"{base}assets/leaflet.fullscreen/Control.FullScreen.css")
    ]
    full.add_to(m)
    folium.LayerControl(collapsed=embed).add_to(m)
    title = definition.title.get(lang)
    page_url = f"{base}maps/{definition.id}"
    credit = (
        f'{html.escape(_("Map"))}: <a href="{page_url}?lang={lang}">{html.escape(title)}</a>'
        f" — {attribution}"
    )
    words = {
        "title": title,
        "credit": credit,
        "embed": _("Embed"),
        "copy": _("Copy this code into your page"),
    }
    m.add_child(_ViewState(overlays, f"{base}embed/{definition.id}", words, not embed))
    root = m.get_root()
    root.html.add_child(_legend(title, _, "incidents" in definition.layers))
    if embed:
        root.html.add_child(
            Element(
                f'<a class="full-map" href="{page_url}?lang={lang}" target="_blank" '
                f'rel="noopener">{html.escape(_("View larger map"))}</a>'
            )
        )
    oembed = f"{base}oembed?url={quote(page_url, safe='')}&format=json"
    root.header.add_child(
        Element(
            f"<title>{_escape(title)}</title>"
            f'<meta name="description" content="{_escape(definition.description.get(lang))}">'
            f'<link rel="alternate" type="application/json+oembed" href="{oembed}" '
            f'title="{_escape(title)}">'
            f'<link rel="icon" href="{base}favicon.ico">'
            "<style>.embed-control button{font:14px sans-serif;padding:4px 8px;border:0;"
            "background:#fff;cursor:pointer}.embed-panel{background:#fff;padding:6px;"
            "width:min(320px,70vw)}.embed-panel textarea{width:100%;font:11px monospace}"
            ".embed-panel label{display:block;font:12px sans-serif;margin-bottom:4px}"
            ".time-filter fieldset{background:#fff;border:0;border-radius:4px;padding:6px 8px;"
            "font:12px sans-serif;box-shadow:0 1px 4px rgba(0,0,0,.3)}"
            ".time-filter label{display:block}.time-filter input{width:140px}"
            ".full-map{position:absolute;z-index:1000;top:10px;left:50px;background:#fff;"
            "padding:4px 8px;border-radius:4px;font:13px sans-serif}</style>"
        )
    )
    page = root.render()
    return page.replace("<html>", f'<html lang="{lang}">', 1)


def _escape(text: str) -> str:
    return json.dumps(text)[1:-1].replace("<", "&lt;").replace('"', "&quot;")


def factor_names(params: dict[str, Any]) -> list[str]:
    """The factors of the build's risk model, in order."""
    return list(params.get("factors", {}))
