/*
 * A map's MapLibre style (/styles/{id}) drawn by MapLibre GL JS, served by this service:
 * fitted to the map's box, and marked for tests and curious readers once drawn
 * (data-drawn on the map's element; data-errors counts the errors MapLibre reported).
 */

import * as maplibregl from "../maplibre-gl/dist/maplibre-gl.mjs";

const element = document.getElementById("style-map");
const map = new maplibregl.Map({container: element, style: element.dataset.style,
  attributionControl: {compact: true}});
const errors = [];
let fitted = false;

map.addControl(new maplibregl.NavigationControl({showCompass: false}));
map.on("error", (event) => {
  errors.push(String((event.error && event.error.message) || event.type));
  element.dataset.errors = String(errors.length);
});
map.once("load", () => {
  // The credits fold into their button, as on the map pages' small screens: the map first.
  const credits = element.querySelector(".maplibregl-compact-show");
  if (credits) { credits.classList.remove("maplibregl-compact-show"); }
  const box = (map.getStyle().metadata || {})["riskmap:bounds"];
  if (box) {
    map.fitBounds([[box[0], box[1]], [box[2], box[3]]], {animate: false, padding: 8});
  }
  fitted = true;
});
map.on("idle", () => {
  if (fitted) { element.dataset.drawn = "1"; }
});
window.styleMap = {map, errors};
