/*
 * The map's furniture in the page's language: the attribution (crediting only what is
 * drawn), the offline basemap beneath the outside tiles, and the legend, which shows the
 * sections of the layers shown. On a small screen a popup has the whole map: the controls
 * step back while one is open.
 */

export function setupControls(ctx) {
  const {map, t, cfg, layers, net} = ctx;
  const attribution = map.attributionControl;
  const prefix = document.createElement("a");
  prefix.href = "https://leafletjs.com";
  prefix.title = t.leaflet;
  prefix.textContent = "Leaflet";
  attribution.setPrefix(prefix.outerHTML);
  attribution.addAttribution(cfg.naturalEarth);
  // The surface's own credit is the data credit below, which follows the layers shown.
  if (layers.risk_surface) {
    attribution.removeAttribution(layers.risk_surface.getAttribution());
    layers.risk_surface.options.attribution = "";
  }
  const toggle = layers.control.getContainer().querySelector(".leaflet-control-layers-toggle");
  if (toggle) {
    toggle.title = t.layers;
    toggle.setAttribute("aria-label", t.layers);
  }
  map.on("popupopen", (e) => {
    map.getContainer().classList.add("popup-open");
    const close = e.popup.getElement().querySelector(".leaflet-popup-close-button");
    if (close) {
      close.title = t.closePopup;
      close.setAttribute("aria-label", t.closePopup);
    }
  });
  map.on("popupclose", () => { map.getContainer().classList.remove("popup-open"); });

  // On a small screen the attribution is one line; a tap (or Enter) shows all of it.
  const attributionEl = attribution.getContainer();
  attributionEl.tabIndex = 0;
  attributionEl.addEventListener("click", (e) => {
    if (e.target.tagName !== "A") { attributionEl.classList.toggle("open"); }
  });
  attributionEl.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && e.target === attributionEl) { attributionEl.classList.toggle("open"); }
  });

  // The outside basemap is credited only while its tiles arrive (offline: none do). Its
  // first tiles may have arrived, or failed, before this module ran: those are counted here.
  let outsideCredited = true;
  const outsideCredit = layers.basemap.getAttribution();
  const container = layers.basemap.getContainer();
  let outsideTiles = container ? Array.from(container.querySelectorAll("img"))
    .filter((img) => img.complete && img.naturalWidth > 0).length : 0;
  layers.basemap.on("tileload", () => {
    outsideTiles += 1;
    if (!outsideCredited && map.hasLayer(layers.basemap)) {
      attribution.addAttribution(outsideCredit);
      outsideCredited = true;
    }
  });
  function outsideSettled() {
    if (!outsideTiles && outsideCredited && map.hasLayer(layers.basemap)) {
      attribution.removeAttribution(outsideCredit);
      outsideCredited = false;
    }
  }
  layers.basemap.on("load", outsideSettled);
  if (map.hasLayer(layers.basemap) && !layers.basemap.isLoading()) { outsideSettled(); }
  layers.basemap.on("remove", () => { outsideCredited = true; outsideTiles = 0; });
  if (cfg.offline) {  // an offline bundle's basemap is drawn from its own data, below
    attribution.removeAttribution(outsideCredit);
    layers.basemap.off("tileload load");
  }

  // Data credit: the publishers of what is drawn, and the link to every source's terms
  // (written by the server, escaped there). A layer whose features name their sources
  // (ctx.drawnSources, as the view moves) credits those; any other (rasters, hexagons) the
  // publishers of its sources covering a country of the features in view, or, while no
  // feature says, of its sources in the map's box.
  let dataCredit = null;
  function credit() {
    if (dataCredit) { attribution.removeAttribution(dataCredit); }
    const names = [];
    const add = (p) => { if (names.indexOf(p) < 0) { names.push(p); } };
    const shown = cfg.layers.filter(ctx.shown);
    const countries = new Set();
    shown.forEach((id) => (ctx.drawnCountries[id] || []).forEach((c) => countries.add(c)));
    shown.forEach((id) => {
      const seen = ctx.drawnSources[id];
      if (seen) {
        seen.forEach((key) => add(cfg.sources[key].publisher));
      } else if (countries.size) {
        cfg.layerSources[id].filter(([, where]) => !where.length
          || where.some((c) => countries.has(c))).forEach(([p]) => add(p));
      } else {
        cfg.publishers[id].forEach(add);
      }
    });
    const escaped = document.createElement("span");
    escaped.textContent = names.join(", ");
    dataCredit = names.length ? cfg.creditTemplate.replace("{publishers}", escaped.innerHTML)
      : null;
    if (dataCredit) { attribution.addAttribution(dataCredit); }
  }

  // The offline basemap, beneath the outside tiles: shows wherever they fail. Fetched at
  // once, drawn once the data is (or after 1.5 s): its outlines are the heaviest work of a
  // page, and what people came for is the data.
  map.createPane("fallback").style.zIndex = 150;
  map.getContainer().classList.add("risk-map");
  const landStyles = {
    land: {color: "#9e9e9e", weight: 0.8, fillColor: "#f2efe9", fillOpacity: 1},
    lake: {color: "#8fb8cf", weight: 0.5, fillColor: "#c6dbe8", fillOpacity: 1},
    river: {color: "#7fa9c4", weight: 1.2, fill: false}
  };
  let land = null;
  let landDue = false;
  function drawLand() {
    if (!land || !landDue || ctx.data.basemap) { return; }
    L.geoJSON(land, {pane: "fallback", interactive: false,
      style: (f) => landStyles[f.properties.kind]}).addTo(map);
    ctx.data.basemap = land.features.length;
  }
  net.getJSON(cfg.basemapUrl).then((fc) => { land = fc; drawLand(); });
  net.afterFirstDraw(() => { landDue = true; drawLand(); });
  setTimeout(() => { landDue = true; drawLand(); }, 1500);

  // The legend (written by the server from the layer definitions): a section per layer,
  // shown while the layer is.
  const legendEl = document.getElementById("risk-legend");
  const Legend = L.Control.extend({
    options: {position: "bottomleft"},
    onAdd: () => {
      L.DomEvent.disableClickPropagation(legendEl);
      L.DomEvent.disableScrollPropagation(legendEl);
      return legendEl;
    }
  });
  new Legend().addTo(map);
  if (ctx.small) { document.getElementById("legend-details").removeAttribute("open"); }
  function syncLegend() {
    legendEl.querySelectorAll("section[data-layers]").forEach((section) => {
      section.hidden = !section.dataset.layers.split(" ").some(ctx.shown);
    });
    const filter = document.getElementById("time-filter");
    if (filter) { filter.hidden = !ctx.shown("incidents"); }
  }
  return {credit, syncLegend};
}
