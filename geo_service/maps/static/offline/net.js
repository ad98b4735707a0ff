/*
 * The API of an offline bundle: the collections of the bundle's area, shipped as scripts
 * beside the page (window.riskMapData.collections), answered here as the service answers
 * them (bbox, property = value filters, q, properties, offset, limit; one feature by id), so
 * the page works from file:// with no request leaving the machine.
 */

import {Net} from "../js/net.js";

/** A text folded for search as the service folds it: no accents, lower case, words. */
export function searchKey(value) {
  if (value === null || value === undefined) { return ""; }
  return String(value).normalize("NFKD").toLowerCase().replace(/[\u0300-\u036f]/g, "")
    .split(/[^\p{L}\p{N}_]+/u).filter((w) => w).join(" ");
}

function extent(geometry) {
  const box = [Infinity, Infinity, -Infinity, -Infinity];
  (function walk(c) {
    if (typeof c[0] === "number") {
      box[0] = Math.min(box[0], c[0]); box[1] = Math.min(box[1], c[1]);
      box[2] = Math.max(box[2], c[0]); box[3] = Math.max(box[3], c[1]);
    } else { c.forEach(walk); }
  })(geometry ? geometry.coordinates : []);
  return box;
}

function failure(status, text) {
  const error = new Error(text);
  error.status = status;
  return error;
}

/** Rows of ``features`` whose names hold every word of ``q``, best match first, then the
 * most populous (the service's order). */
function search(features, q) {
  const words = searchKey(q).split(" ").filter((w) => w);
  if (!words.length) { return features; }
  const wanted = words.join(" ");
  const scored = [];
  features.forEach((f, i) => {
    const name = searchKey(f.properties.name);
    const every = name + " " + searchKey(f.properties.alternatenames);
    if (!words.every((w) => every.indexOf(w) >= 0)) { return; }
    const best = name === wanted ? 0 : (name.startsWith(wanted) ? 1
      : ((" " + name).indexOf(" " + wanted) >= 0 ? 2 : 3));
    scored.push([best, -(f.properties.population || 0), i, f]);
  });
  scored.sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]);
  return scored.map((s) => s[3]);
}

export class OfflineNet extends Net {
  constructor(api, data, store) {
    super(api, data);
    this.store = store;
    this.boxes = {};
  }

  getJSON(url) {
    return new Promise((resolve) => resolve(this.answer(url)));
  }

  /** No record pages offline: a feature's record is its popup. */
  itemPage() { return null; }

  answer(url) {
    if (url === this.store.basemapUrl) { return this.store.basemap; }
    if (!url.startsWith(this.api)) { throw failure(404, "not in this bundle: " + url); }
    const [path, query] = url.slice(this.api.length).split("?");
    const [layer, items, id] = path.split("/");
    const fc = this.store.collections[layer];
    if (!fc || items !== "items") { throw failure(404, "no collection " + layer); }
    if (id !== undefined) {
      const key = decodeURIComponent(id);
      const found = fc.features.find((f) => String(f.id) === key);
      if (!found) { throw failure(404, "no feature " + key); }
      return found;
    }
    return this.page(layer, fc, new URLSearchParams(query || ""));
  }

  page(layer, fc, params) {
    let rows = fc.features;
    const bbox = params.get("bbox");
    if (bbox) {
      const [w, s, e, n] = bbox.split(",").map(Number);
      if (!this.boxes[layer]) { this.boxes[layer] = fc.features.map((f) => extent(f.geometry)); }
      const boxes = this.boxes[layer];
      rows = rows.filter((f, i) => boxes[i][0] <= e && boxes[i][2] >= w && boxes[i][1] <= n
        && boxes[i][3] >= s);
    }
    const reserved = ["bbox", "limit", "offset", "properties", "q", "f"];
    params.forEach((value, key) => {
      if (reserved.indexOf(key) < 0) {
        rows = rows.filter((f) => f.properties[key] !== null && f.properties[key] !== undefined
          && String(f.properties[key]) === value);
      }
    });
    if (params.get("q")) { rows = search(rows, params.get("q")); }
    const offset = Number(params.get("offset") || 0);
    const limit = Number(params.get("limit") || 100);
    const chosen = rows.slice(offset, offset + limit);
    const wanted = params.get("properties");
    const keep = wanted ? wanted.split(",") : null;
    return {
      type: "FeatureCollection",
      numberMatched: rows.length,
      numberReturned: chosen.length,
      features: keep ? chosen.map((f) => ({type: "Feature", id: f.id, geometry: f.geometry,
        properties: Object.fromEntries(keep.filter((k) => k in f.properties)
          .map((k) => [k, f.properties[k]]))})) : chosen
    };
  }
}
