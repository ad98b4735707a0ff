/*
 * Rows the public may know only by area (restricted: a witness's report, a monitor's
 * village): the H3 cells of a layer's areas collection (cfg.areas: incidents →
 * incident_areas), each with how many rows it holds, drawn with the layer and counted in its
 * status line. The collection is the same for every caller; the page's requests carry no
 * token, so it is drawn for every layer that has one.
 *
 * Cells lie in a pane of their own under every dot and mark, drawn without pointer events: a
 * cell answers a tap that no dot, mine or dam took (as official units do).
 */

import {contains} from "./geometry.js";
import {bboxOf} from "./net.js";
import {popupOptions} from "./popup.js";

const PANE = "cells";

/**
 * The cells of layer ``id`` in ``target``: ``look.style(properties)`` is a cell's path style,
 * ``look.popup(properties)`` its popup (a node).
 */
export function Areas(ctx, id, target, look) {
  const {cfg, net, map} = ctx;
  const collection = (cfg.areas || {})[id];
  if (!collection) {
    return {enabled: false, load: () => Promise.resolve([]), clear: () => {}, inView: () => 0};
  }
  if (!map.getPane(PANE)) { map.createPane(PANE).style.zIndex = 360; }
  const renderer = L.svg({pane: PANE});
  const drawn = L.featureGroup().addTo(target);
  let cells = [];
  let seq = 0;

  // A tap no layer above took (none opened a popup between "preclick" and "click").
  let taken = false;
  map.on("preclick", () => { taken = false; });
  map.on("popupopen", () => { taken = true; });
  map.on("click", (e) => {
    if (taken || !map.hasLayer(drawn)) { return; }
    const hit = cells.find((c) => contains(c.feature.geometry, e.latlng.lng, e.latlng.lat));
    if (hit) { hit.layer.openPopup(e.latlng); }
  });

  function draw(features) {
    drawn.clearLayers();
    cells = [];
    features.forEach((f) => {
      const layer = L.geoJSON(f, {style: look.style(f.properties), interactive: false,
        pane: PANE, renderer: renderer});
      layer.eachLayer((l) => { l.options.riskLayer = id; });
      layer.bindPopup(() => look.popup(f.properties), popupOptions(map));
      layer.addTo(drawn);
      cells.push({feature: f, layer: layer, count: f.properties.count || 0,
        bounds: layer.getBounds()});
    });
    ctx.data[id + "Areas"] = String(features.length);
  }

  return {
    /** Whether the layer has an areas collection in this build. */
    enabled: true,
    /** The cells within ``bounds``, drawn once fetched (a promise of them). */
    load(bounds) {
      const mine = ++seq;
      return net.getJSON(cfg.api + collection + "/items?limit=10000&bbox=" + bboxOf(bounds))
        .then((fc) => {
          if (mine === seq) { draw(fc.features); }
          return fc.features;
        });
    },
    clear() {
      seq += 1;
      drawn.clearLayers();
      cells = [];
      ctx.data[id + "Areas"] = "0";
    },
    /** How many rows the cells in view hold. */
    inView() {
      const b = map.getBounds();
      return cells.reduce((sum, c) => (b.intersects(c.bounds) ? sum + c.count : sum), 0);
    }
  };
}
