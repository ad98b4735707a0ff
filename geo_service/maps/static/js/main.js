/*
 * What a map page does as it is used (geo_service/maps/page.py writes the page; this module
 * starts once it is parsed, from the map, layers and settings the page hands over in
 * window.riskMapParts).
 *
 * Every layer comes from the service's API by URL, only for the view, and is drawn as its
 * definition (layers/layers.toml) says. A popup fetches what it shows only when it opens.
 * The legend follows the layers shown, the attribution credits what is drawn, and the view
 * is kept in the URL, so a shared link reopens it.
 *
 * Test hooks (document.body.dataset): communities, grouped, labels, incidents,
 * incidentMarkers, dams, a layer drawn as sites by its id (mine_sites), basemap, <layer>Areas
 * (the cells of a layer's restricted rows drawn: incidentsAreas), and drawn ("1" once every
 * shown layer has drawn its view); window.riskMap is the map, RiskMap.drawn(map) counts what is drawn.
 */

import {Communities} from "./communities.js";
import {setupControls} from "./controls.js";
import {Dams, Points, ViewLayer, drawSite, evidenceItem} from "./features.js";
import {Incidents} from "./incidents.js";
import {Net} from "./net.js";
import {addSearch} from "./search.js";
import {Sharing} from "./share.js";
import {addTable} from "./table.js";
import {Styles, TAP} from "./style.js";
import {Words} from "./text.js";

const SMALL = "(max-width: 600px), (max-height: 480px)";

/*
 * The features of a layer drawn by key: a new view adds what is new and removes what left
 * it, so a feature that stays (and its open popup) is never redrawn; the popup panning the
 * map into view does not close it.
 */
function Keyed(target) {
  let drawn = {};
  function open(layer) {
    return (layer.isPopupOpen && layer.isPopupOpen())
      || (layer.getLayers && layer.getLayers().some(open));
  }
  return {
    update(items, keyOf, make) {
      const next = {};
      items.forEach((item) => { next[keyOf(item)] = true; });
      Object.keys(drawn).forEach((key) => {
        if (!next[key] && !drawn[key].some(open)) {
          drawn[key].forEach((layer) => target.removeLayer(layer));
          delete drawn[key];
        }
      });
      const added = items.filter((item) => !drawn[keyOf(item)]);
      make(added).forEach((pair) => { drawn[pair[0]] = pair[1]; });
    },
    clear() { target.clearLayers(); drawn = {}; }
  };
}

/** Starts the page; ``Api`` answers its requests (the service's API, or an offline
 * bundle's data). */
export function start(map, cfg, layers, Api = Net) {
  const data = document.body.dataset;
  const ctx = {
    map, cfg, layers, data,
    t: cfg.t,
    small: window.matchMedia(SMALL).matches,
    words: new Words(cfg.lang, cfg.t),
    styles: new Styles(cfg),
    net: new Api(cfg.api, data),
    keyed: Keyed,
    communities: null,
    /** Per area layer, open(id): its popup, now or once the area is drawn. */
    areas: {},
    incidents: null,
    shown: (id) => !!layers[id] && map.hasLayer(layers[id]),
    status: (id, text) => {
      const el = document.getElementById(id);
      if (el) { el.textContent = text; }
    },
    update: () => {},
    credit: () => {},
    /** Sources of each layer's features in view, by key (null: they do not say). */
    drawnSources: {},
    /** Countries of each layer's features in view (those that say). */
    drawnCountries: {},
    drawnFrom: (id, features) => {
      const keys = new Set(features.map((f) => String(f.id).split(":")[0])
        .filter((key) => cfg.sources[key]));
      ctx.drawnSources[id] = keys.size || !features.length ? keys : null;
      ctx.drawnCountries[id] = new Set(features.map((f) => f.properties.country)
        .filter((c) => c));
      ctx.credit();
    }
  };
  ctx.evidenceItem = (e) => evidenceItem(ctx, e);
  window.riskMap = map;
  // One canvas draws every shape of the overlay (dots, hexagons, footprints): a second one
  // would lie over the first and take every tap meant for it, and which one lay over would
  // depend on whose data came first. Its tolerance makes the smallest dot answer a 24 px tap.
  const dots = cfg.layers.map((id) => ctx.styles.of(id))
    .filter((s) => s && (s.draw === "communities" || s.draw === "incidents"))
    .map((s) => s.size);
  map.options.renderer = L.canvas({tolerance: Math.max(0, (TAP - Math.min(TAP, ...dots)) / 2)});

  const {credit, syncLegend} = setupControls(ctx);
  ctx.credit = credit;
  addSearch(ctx);
  const sharing = Sharing(ctx);
  ctx.update = sharing.update;

  cfg.layers.forEach((id) => {
    const style = ctx.styles.of(id);
    const group = layers[id];
    if (!group || !style || style.draw === "surface" || style.draw === "raster") { return; }
    if (style.draw === "communities") {
      ctx.communities = Communities(ctx, group);
    } else if (style.draw === "sites") {
      // Mine sites are points; the mapped mining areas (concessions) their outlines.
      const noun = id === "concessions" ? ctx.t.miningAreas : ctx.t.sites;
      ViewLayer(ctx, id, group, (f, target) => drawSite(ctx, id, f, target), noun);
    } else if (style.draw === "dams") {
      Dams(ctx, id, group);
    } else if (style.draw === "incidents") {
      ctx.incidents = Incidents(ctx, group);
    } else {
      Points(ctx, id, group);
    }
  });
  addTable(ctx);
  map.on("overlayadd overlayremove", () => { syncLegend(); credit(); });
  map.on("moveend overlayadd overlayremove", () => ctx.update());
  syncLegend();
  credit();
  ctx.update();
  ctx.net.start();
  if (layers.risk_surface) {
    layers.risk_surface.on("load", () => { data.tilesAt = Math.round(performance.now()); });
  }
}

/** Features drawn now per layer (what is on the map, not what was fetched). */
export function drawn(map) {
  const counts = {};
  map.eachLayer((layer) => {
    const id = layer.options && layer.options.riskLayer;
    if (id) { counts[id] = (counts[id] || 0) + 1; }
  });
  return counts;
}

window.RiskMap = {drawn};
const parts = window.riskMapParts;
if (parts) { start(parts.map, parts.config, parts.layers); }
