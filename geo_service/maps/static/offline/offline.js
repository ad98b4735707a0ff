/*
 * The map page of an offline bundle (riskmap bundle): the live page's script, its API
 * answered from the data shipped beside it (./net.js), and the raster layers' tiles read
 * from PMTiles archives shipped as scripts (window.riskMapData.tiles, base64), so that
 * nothing is fetched from anywhere.
 */

import {PMTiles} from "pmtiles";
import {start} from "../js/main.js";
import {OfflineNet} from "./net.js";

const store = window.riskMapData;
const EMPTY = "data:image/gif;base64,R0lGODlhAQABAAAAACH5BAEKAAEALAAAAAABAAEAAAICTAEAOw==";

/** An archive held in memory, as the PMTiles reader asks for its bytes. */
class Bytes {
  constructor(key, base64) {
    this.key = key;
    const raw = atob(base64);
    const out = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i += 1) { out[i] = raw.charCodeAt(i); }
    this.buffer = out.buffer;
  }

  getKey() { return this.key; }

  getBytes(offset, length) {
    return Promise.resolve({data: this.buffer.slice(offset, offset + length)});
  }
}

const archives = {};
Object.keys(store.tiles || {}).forEach((layer) => {
  archives[layer] = new PMTiles(new Bytes(layer, store.tiles[layer]));
});

// Tile layers whose URL is the service's (tiles/<layer>/{z}/{x}/{y}.png) read their archive.
const createTile = L.TileLayer.prototype.createTile;
L.TileLayer.include({
  createTile(coords, done) {
    const m = /^tiles\/([^/]+)\//.exec(this._url || "");
    const archive = m && archives[m[1]];
    if (!archive) { return createTile.call(this, coords, done); }
    const tile = document.createElement("img");
    tile.alt = "";
    tile.setAttribute("role", "presentation");
    const z = this._getZoomForUrl();
    archive.getZxy(z, coords.x, coords.y).then((found) => {
      tile.onload = () => done(null, tile);
      tile.onerror = () => done(null, tile);
      tile.src = found ? URL.createObjectURL(new Blob([found.data], {type: "image/png"}))
        : EMPTY;
    }, (error) => done(error, tile));
    return tile;
  }
});

class BundleNet extends OfflineNet {
  constructor(api, data) { super(api, data, store); }
}

document.addEventListener("DOMContentLoaded", () => {
  const parts = window.riskMapParts;
  start(parts.map, parts.config, parts.layers, BundleNet);
});
