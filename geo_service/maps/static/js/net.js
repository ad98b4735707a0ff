/*
 * Requests to the service's API, and the page's "drawn" signal: "1" once every shown layer
 * has drawn its view (document.body.dataset.drawn), with drawnAt (ms since navigation) after
 * the frame that paints it, for the benchmark and the tests.
 */

export class Net {
  constructor(api, data) {
    this.api = api;
    this.data = data;
    this.pending = 0;
    this.later = [];
    this.items = {};
    data.drawn = "0";
  }

  done() {
    this.pending -= 1;
    if (!this.pending) {
      window.requestAnimationFrame(() => {
        if (this.pending) { return; }
        this.data.drawnAt = Math.round(performance.now());
        this.data.drawn = "1";
        this.later.splice(0).forEach((f) => f());
      });
    }
  }

  /** Counts a layer's request as pending until it settles. */
  track(promise) {
    this.pending += 1;
    this.data.drawn = "0";
    return promise.then((value) => { this.done(); return value; },
      (error) => { this.done(); throw error; });
  }

  /** Runs ``f`` once the first view is drawn. */
  afterFirstDraw(f) { this.later.push(f); }

  /** Settles the first view when no layer asked for anything. */
  start() {
    if (!this.pending) { this.pending = 1; this.done(); }
  }

  getJSON(url) {
    return fetch(url, {headers: {Accept: "application/geo+json, application/json"}})
      .then((r) => {
        if (!r.ok) {
          const error = new Error("HTTP " + r.status);
          error.status = r.status;
          throw error;
        }
        return r.json();
      });
  }

  itemUrl(layer, id) { return this.api + layer + "/items/" + encodeURIComponent(id); }

  itemPage(layer, id) { return this.itemUrl(layer, id) + "?f=html"; }

  /** One feature, fetched once per page (popups and sentences share it). */
  item(layer, id) {
    const url = this.itemUrl(layer, id);
    if (!this.items[url]) {
      this.items[url] = this.getJSON(url);
      this.items[url].catch(() => { delete this.items[url]; });
    }
    return this.items[url];
  }
}

/** The map's view as the API's bbox (clamped to the world). */
export function bboxOf(bounds) {
  return [Math.max(bounds.getWest(), -180), Math.max(bounds.getSouth(), -90),
    Math.min(bounds.getEast(), 180), Math.min(bounds.getNorth(), 90)]
    .map((v) => v.toFixed(5)).join(",");
}
