/*
 * Incidents: every one of the view, grouped in clusters (supercluster) so any number stays
 * smooth, and filtered by year in the browser. A group is a ring with its count on a badge:
 * a community under it shows, and a tap on that dot opens the community.
 */

import {Areas} from "./areas.js";
import {h, put} from "./dom.js";
import {bboxOf} from "./net.js";
import {lazyPopup, popupOptions, recordLink, rows, sourceLine, sourceOf} from "./popup.js";

export function Incidents(ctx, group) {
  const {map, t, net, words, cfg} = ctx;
  const style = ctx.styles.of("incidents");
  const markers = L.featureGroup().addTo(group);
  const keyed = ctx.keyed(markers);
  const from = document.getElementById("incidents-from");
  const to = document.getElementById("incidents-to");
  const span = document.getElementById("incidents-span");
  const box = document.getElementById("time-filter");
  const Filter = L.Control.extend({
    options: {position: "bottomright"},
    onAdd: () => {
      L.DomEvent.disableClickPropagation(box);
      L.DomEvent.disableScrollPropagation(box);
      return box;
    }
  });
  new Filter().addTo(map);
  if (ctx.small) { document.getElementById("time-details").removeAttribute("open"); }
  let loaded = null;
  let points = {x: null, y: null, year: null, id: [], date: []};
  let chosen = new Int32Array(0);
  let index = null;
  let seq = 0;
  let timer = null;

  function maxZoom() {
    const z = map.getMaxZoom();
    return isFinite(z) ? Math.min(z, cfg.cluster.maxZoom) : cfg.cluster.maxZoom;
  }

  function years() {
    const a = Number(from.value);
    const b = Number(to.value);
    return a <= b ? [a, b] : [b, a];
  }

  function rebuild() {
    const range = years();
    const keep = [];
    const features = [];
    for (let i = 0; i < points.id.length; i++) {
      if (points.year[i] >= range[0] && points.year[i] <= range[1]) {
        keep.push(i);
        features.push({type: "Feature", properties: {i: i},
          geometry: {type: "Point", coordinates: [points.x[i], points.y[i]]}});
      }
    }
    chosen = Int32Array.from(keep);
    keyed.clear();
    // The service's vector tiles group points with the same options (store/groups.py).
    index = new window.Supercluster({radius: cfg.cluster.radius, extent: cfg.cluster.extent,
      maxZoom: maxZoom(), minPoints: 2})
      .load(features);
    draw();
  }

  function incident(id, el) {
    return net.item("incidents", id).then((f) => {
      const p = f.properties;
      const values = {
        type: ctx.styles.published(style, "type", p.type),
        fatalities: p.fatalities === null ? null : words.count(p.fatalities),
        perpetrator: p.perpetrator,
        location_precision: ctx.styles.published(style, "location_precision",
          p.location_precision)
      };
      put(el, h("h2", {}, words.date(p.date)),
        rows(cfg.popup.incidents.map((k) => [style.fields[k] || k, values[k]])),
        sourceLine(ctx, sourceOf(ctx, id)), recordLink(ctx, "incidents", id));
    });
  }

  function leavesPopup(cluster, n) {
    const leaves = index.getLeaves(cluster.properties.cluster_id, 10);
    return h("div", {class: "risk-popup"}, h("h2", {}, words.plural(t.cluster, n)),
      h("ul", {}, leaves.map((leaf) => {
        const i = leaf.properties.i;
        return h("li", {}, h("a", {href: net.itemPage("incidents", points.id[i])},
          words.date(points.date[i])));
      })),
      n > leaves.length ? h("p", {}, words.plural(t.andMore, n - leaves.length)) : null);
  }

  function draw() {
    if (!index) { return; }
    const b = map.getBounds();
    const z = Math.round(map.getZoom());
    const items = index.getClusters([Math.max(b.getWest(), -180), Math.max(b.getSouth(), -90),
      Math.min(b.getEast(), 180), Math.min(b.getNorth(), 90)], z);
    keyed.update(items, (item) => (item.properties.cluster ? "c" + item.properties.cluster_id
      : "p" + item.properties.i), (added) => added.map((item) => {
      const c = item.geometry.coordinates;
      const ll = [c[1], c[0]];
      if (item.properties.cluster) {
        const n = item.properties.point_count;
        const size = n < 10 ? 24 : (n < 100 ? 30 : (n < 1000 ? 36 : 42));
        const marker = L.marker(ll, {
          keyboard: false, title: words.plural(t.cluster, n), riskLayer: "incidents",
          icon: L.divIcon({className: "incident-cluster", iconSize: [size, size],
            html: h("span", {}, words.compact.format(n))})
        }).addTo(markers);
        marker.on("click", (e) => {
          // A community under the group (incidents happen in towns) comes first.
          // (Where the tap was: a marker's own event gives its centre.)
          const tap = e.originalEvent ? map.mouseEventToContainerPoint(e.originalEvent)
            : e.containerPoint;
          const under = ctx.communities && ctx.communities.at(tap, 9);
          if (under) { under.openPopup(); return; }
          const next = index.getClusterExpansionZoom(item.properties.cluster_id);
          if (next <= maxZoom()) {
            map.setView(ll, next);
          } else {  // all at one place: list them
            marker.bindPopup(leavesPopup(item, n), popupOptions(map)).openPopup();
          }
        });
        return ["c" + item.properties.cluster_id, [marker]];
      }
      const i = item.properties.i;
      const dot = L.circleMarker(ll, {radius: style.size / 2, weight: 1.5,
        color: style.outline, fillColor: style.colour, fillOpacity: 1, riskLayer: "incidents"})
        .addTo(markers);
      dot.feature = {type: "Feature", id: points.id[i], properties: {date: points.date[i]}};
      lazyPopup(ctx, dot, words.date(points.date[i]), (el) => incident(points.id[i], el));
      return ["p" + i, [dot]];
    }));
    let inView = 0;
    const west = b.getWest();
    const east = b.getEast();
    const south = b.getSouth();
    const north = b.getNorth();
    for (let k = 0; k < chosen.length; k++) {
      const j = chosen[k];
      if (points.x[j] >= west && points.x[j] <= east && points.y[j] >= south
          && points.y[j] <= north) { inView += 1; }
    }
    const range = years();
    ctx.data.incidents = inView;
    ctx.data.incidentMarkers = items.length;
    span.textContent = range[0] + "–" + range[1];
    const byArea = areas.inView();
    ctx.data.incidentAreas = byArea;
    ctx.status("incidents-status", words.plural(t.incidentCount, inView)
      + (byArea ? "; " + words.plural(t.areaCount, byArea) : ""));
  }

  function load() {
    if (!ctx.shown("incidents")) { return; }
    const view = map.getBounds();
    if (loaded && loaded.contains(view)) { draw(); return; }
    const want = view.pad(0.5);
    const mine = ++seq;
    const url = cfg.api + "incidents/items?limit=10000&properties=date&bbox=" + bboxOf(want);
    // The reports the public knows only by area, from their own collection.
    net.track(areas.load(want)).then(() => { if (mine === seq) { draw(); } }, () => null);
    // Every page of the view at once after the first (which says how many there are).
    net.track(net.getJSON(url).then((first) => {
      const pages = [Promise.resolve(first)];
      for (let offset = 10000; offset < first.numberMatched; offset += 10000) {
        pages.push(net.getJSON(url + "&offset=" + offset));
      }
      return Promise.all(pages);
    }).then((pages) => {
      if (mine !== seq) { return; }
      pages.forEach((page) => {
        page.features = page.features.filter((f) => f.geometry && f.geometry.type === "Point");
      });
      const n = pages.reduce((s, p) => s + p.features.length, 0);
      points = {x: new Float64Array(n), y: new Float64Array(n), year: new Int16Array(n),
        id: new Array(n), date: new Array(n)};
      let i = 0;
      pages.forEach((page) => page.features.forEach((f) => {
        points.x[i] = f.geometry.coordinates[0];
        points.y[i] = f.geometry.coordinates[1];
        points.date[i] = f.properties.date;
        points.year[i] = f.properties.date ? Number(f.properties.date.slice(0, 4)) : 0;
        points.id[i] = f.id;
        i += 1;
      }));
      loaded = want;
      rebuild();
    })).catch(() => ctx.status("incidents-status", t.failed));
  }

  // Reports the public may know only by area (restricted, incident_areas): their cell and a
  // count, with no date, so the year filter cannot apply to them; the count says so.
  const areas = Areas(ctx, "incidents", group, {
    style: () => ({color: style.colour, weight: 1.5, dashArray: "5 4", fillColor: style.colour,
      fillOpacity: 0.12}),
    popup: (p) => h("div", {class: "risk-popup"},
      h("h2", {}, words.plural(t.areaIncidents, p.count || 0)),
      h("p", {class: "note"}, t.areaNote))
  });

  function changed() {
    const range = years();
    document.getElementById("incidents-from-value").textContent = from.value;
    document.getElementById("incidents-to-value").textContent = to.value;
    span.textContent = range[0] + "–" + range[1];
    ctx.update();
    clearTimeout(timer);
    timer = setTimeout(() => { if (points.id.length || loaded) { rebuild(); } }, 60);
  }
  from.addEventListener("input", changed);
  to.addEventListener("input", changed);
  group.on("add", load);
  map.on("moveend", load);
  load();
  return {years};
}
