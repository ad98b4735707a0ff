/*
 * Mine sites, tailings dams and any other point layer: the features of the view, drawn in
 * their definition's symbol and colours, with popups of the fields the definition names.
 */

import {Areas} from "./areas.js";
import {h, put, symbol} from "./dom.js";
import {contains} from "./geometry.js";
import {bboxOf} from "./net.js";
import {lazyPopup, recordLink, rows, sourceLine, sourceOf} from "./popup.js";
import {fill} from "./text.js";

/** A layer of the view's features, drawn by ``draw(feature, target)``, counted in the legend. */
export function ViewLayer(ctx, id, group, draw, noun) {
  const {map, t, net, words} = ctx;
  const style = ctx.styles.of(id);
  const drawn = L.featureGroup().addTo(group);
  const keyed = ctx.keyed(drawn);
  const hook = {tailings_consequence: "dams"}[id] || id;
  const keep = chosen(ctx, id, () => { if (last) { show(last); } });
  // Features the public may know only by area (restricted), from the layer's areas
  // collection when it has one: their cell and how many it holds.
  const areas = Areas(ctx, id, group, {
    style: () => ({color: style.outline || "#111", weight: 1.5, dashArray: "5 4",
      fillColor: ctx.styles.colour(style, null), fillOpacity: 0.25}),
    popup: (p) => h("div", {class: "risk-popup"}, h("h2", {}, style.name),
      h("p", {}, words.plural(t.areaFeatures, p.count || 0)),
      h("p", {class: "note"}, t.areaFeatureNote))
  });
  let seq = 0;
  let last = null;
  function show(fc) {
    const features = fc.features.filter(keep);
    const byArea = areas.inView();
    ctx.drawnFrom(id, features);
    keyed.update(features, (f) => f.id, (added) => added.map((f) => {
      const parts = L.featureGroup().addTo(drawn);
      draw(f, parts);
      return [f.id, [parts]];
    }));
    ctx.data[hook] = features.length;
    ctx.status(id + "-status", (fc.numberMatched > fc.numberReturned
      ? fill(t.partial, {shown: words.count(features.length),
        total: words.count(fc.numberMatched)})
      : words.plural(noun, features.length))
      + (byArea ? "; " + words.plural(t.areaCount, byArea) : ""));
  }
  function load() {
    if (!ctx.shown(id)) { return; }
    const mine = ++seq;
    if (map.getZoom() < (style.minZoom || 0)) {
      last = null;
      keyed.clear();
      areas.clear();
      ctx.drawnFrom(id, []);
      ctx.data[hook] = 0;
      ctx.status(id + "-status", t.zoomInFor);
      return;
    }
    if (areas.enabled) {
      net.track(areas.load(map.getBounds()))
        .then(() => { if (mine === seq && last) { show(last); } }, () => null);
    }
    net.track(net.getJSON(ctx.cfg.api + id + "/items?limit=" + ctx.cfg.viewLimit
      + "&properties=" + style.properties.join(",") + (ctx.cfg.where[id] || "")
      + "&bbox=" + bboxOf(map.getBounds()))
      .then((fc) => {
        if (mine !== seq) { return; }
        last = fc;
        show(fc);
      })).catch(() => ctx.status(id + "-status", t.failed));
  }
  group.on("add", load);
  map.on("moveend", load);
  load();
}

/** Which features of a layer the reader keeps (its legend's filter, if it has one); calls
 * ``changed`` when the choice changes. */
function chosen(ctx, id, changed) {
  const filter = ctx.styles.of(id).filter;
  const box = document.querySelector('fieldset.filter[data-layer="' + id + '"]');
  if (!filter || !box) { return () => true; }
  const group = {};
  filter.groups.forEach((values, i) => values.forEach((v) => { group[v] = String(i); }));
  let wanted = null;
  function read() {
    wanted = new Set(Array.from(box.querySelectorAll("input:checked")).map((i) => i.value));
  }
  read();
  box.addEventListener("change", () => { read(); changed(); });
  return (f) => wanted.has(group[f.properties[filter.field]] || "other");
}

function field(ctx, layer, key, value) {
  return [ctx.styles.of(layer).fields[key] || key, value];
}

function where(ctx, p, name) {
  return [h("h2", {}, name), h("p", {class: "where"}, ctx.cfg.countries[p.country] || p.country)];
}

// ---- mine sites ---------------------------------------------------------------------------

export function drawSite(ctx, layer, f, target) {
  const style = ctx.styles.of(layer);
  const p = f.properties;
  const open = (el) => site(ctx, layer, f.id, p.name, el);
  if (f.geometry.type !== "Point") {
    const shape = L.geoJSON(f, {style: {color: "#111", weight: 1.5, fillColor: "#fff",
      fillOpacity: 0.25}}).addTo(target);
    shape.eachLayer((l) => {
      l.options.riskLayer = layer;
      lazyPopup(ctx, l, p.name, open);
    });
    return;
  }
  const c = f.geometry.coordinates;
  if (p.footprint_radius_m) {
    L.circle([c[1], c[0]], {radius: p.footprint_radius_m, color: "#111", weight: 1,
      dashArray: "4 3", fill: false, interactive: false}).addTo(target);
  }
  const marker = L.marker([c[1], c[0]], {
    keyboard: false, title: p.name, riskLayer: layer,
    icon: ctx.styles.icon(style, "site-icon", ctx.styles.colour(style, p[style.field]))
  }).addTo(target);
  marker.feature = f;
  lazyPopup(ctx, marker, p.name, open);
}

function site(ctx, layer, id, name, el) {
  const {t, net, words, cfg} = ctx;
  const style = ctx.styles.of(layer);
  return Promise.all([
    net.item(layer, id),
    net.item("concession_risk", id).catch(() => null)
  ]).then((found) => {
    const p = found[0].properties;
    const r = found[1] ? found[1].properties : null;
    let incidents = null;
    if (r) {
      incidents = r.incidents_1y === null ? t.noCoverage : (r.reference_date
        ? fill(t.incidentsNearby, {y1: words.count(r.incidents_1y), y3: words.count(r.incidents_3y),
          y5: words.count(r.incidents_5y), km: words.count(cfg.concessionKm),
          date: words.date(r.reference_date)}) : null);
    }
    // Counts are null where no source of their kind looked: "no data", never 0.
    const values = {
      commodity: ctx.styles.published(style, "commodity", p.commodity, "en"),
      holder: p.holder,
      status: p.status,
      footprint: p.footprint === "site" && p.footprint_radius_m
        ? fill(t.siteFootprint, {km: words.num(p.footprint_radius_m / 1000, 0)}) : t.polygon,
      incidents_nearby: incidents,
      communities_nearby: !r ? null : (r.communities_within === null ? t.noCoverage
        : fill(t.communitiesNearby, {n: words.count(r.communities_within),
          km: words.count(cfg.concessionKm), people: words.plural(t.people, r.population_within)})),
      dams_inside: !r ? null : (r.dams_inside === null ? t.noCoverage : words.count(r.dams_inside))
    };
    put(el, ...where(ctx, p, name),
      rows(cfg.popup[layer].map((k) => field(ctx, layer, k, values[k]))),
      sourceLine(ctx, sourceOf(ctx, id)), recordLink(ctx, layer, id));
  });
}

// ---- tailings dams ------------------------------------------------------------------------

export function Dams(ctx, id, group) {
  const {map} = ctx;
  const runout = L.featureGroup().addTo(map);
  const style = ctx.styles.of(id);
  function drawDam(f, target) {
    const p = f.properties;
    const c = f.geometry.coordinates;
    const colour = ctx.styles.colour(style, p[style.field]);
    const marker = L.marker([c[1], c[0]], {
      keyboard: false, title: p.name, riskLayer: id,
      icon: ctx.styles.icon(style, p.failed ? "dam-icon failed" : "dam-icon", colour)
    }).addTo(target);
    marker.feature = f;
    lazyPopup(ctx, marker, p.name, (el) => dam(ctx, id, f.id, p.name, el));
    marker.on("popupopen", () => {
      runout.clearLayers();
      // The median run-out, and how far a flow is followed over land (the p90 run-out, no
      // further than the overland limit): the chance of a flow falls between the two.
      [[p.runout_reach_km, "6 4"], [p.runout_p50_km, null]].forEach((r) => {
        if (r[0]) {
          L.circle([c[1], c[0]], {radius: r[0] * 1000, color: "#7a0177", weight: 2,
            dashArray: r[1], fillColor: colour, fillOpacity: r[1] ? 0.08 : 0.12,
            interactive: false}).addTo(runout);
        }
      });
    });
    marker.on("popupclose", () => runout.clearLayers());
  }
  ViewLayer(ctx, id, group, drawDam, ctx.t.dams);
}

function dam(ctx, layer, id, name, el) {
  const {t, net, words, cfg} = ctx;
  const style = ctx.styles.of(layer);
  return net.item(layer, id).then((f) => {
    const p = f.properties;
    const cls = p[style.field];
    const small = (text) => [" ", h("small", {}, "(" + text + ")")];
    const values = {
      commodity: ctx.styles.published(style, "commodity", p.commodity, "pt"),
      indicative_consequence_class: cls ? [symbol(style.path, ctx.styles.colour(style, cls)),
        ctx.styles.label(style, cls), small(t.indicative)] : null,
      reported_consequence: p.reported_consequence,
      status: p.failed ? fill(t.failedOn, {date: words.date(p.failure_date)})
        : ctx.styles.published(style, "status", p.status),
      construction_method: ctx.styles.published(style, "construction_method",
        p.construction_method),
      height_m: p.height_m === null ? null : fill(t.m, {value: words.num(p.height_m, 0)}),
      volume_m3: p.volume_m3 === null ? null : fill(t.m3, {value: words.count(p.volume_m3)}),
      runout: p.runout_p50_km === null ? null : [fill(t.runoutBand, {
        median: words.km(p.runout_p50_km), low: words.km(p.runout_p10_km),
        high: words.km(p.runout_p90_km)
      }), p.height_estimated || p.volume_estimated ? small(t.estimatedDam) : null],
      communities_in_runout: p.communities_in_runout === null ? t.noCoverage
        : words.count(p.communities_in_runout),
      people_in_runout: p.people_in_runout === null ? t.noCoverage : [fill(t.peopleBand, {
        n: words.count(p.people_in_runout), low: words.count(p.people_in_runout_p10),
        high: words.count(p.people_in_runout_p90)
      }), small(t.screening)],
      communities_downstream: p.communities_downstream === null ? t.noCoverage
        : words.count(p.communities_downstream),
      river_name: p.river_name
    };
    const source = sourceOf(ctx, id);
    put(el, ...where(ctx, p, name),
      rows(cfg.popup[layer].map((k) => field(ctx, layer, k, values[k]))),
      sourceLine(ctx, source),
      recordLink(ctx, layer, id, source && source.layer
        ? [" · ", h("a", {href: net.itemPage(source.layer, id)}, source.publisher)] : null));
  });
}

// ---- any other point layer ----------------------------------------------------------------

export function Points(ctx, id, group) {
  const style = ctx.styles.of(id);
  // Areas (official units) lie in a pane of their own under every other layer, drawn on a
  // canvas that takes no pointer events: an area answers a tap that no dot, mine or dam
  // took (and keyboards through the table and the search).
  const map = ctx.map;
  if (!map.getPane("areas")) { map.createPane("areas").style.zIndex = 350; }
  const renderer = L.canvas({pane: "areas"});
  const areas = new Set();
  answerTaps(map, areas);
  // Areas drawn now, by id; one the search chose opens once drawn.
  const byId = new Map();
  let wanted = null;
  const openArea = (m) => m.openPopup(m.getBounds().getCenter());
  ctx.areas[id] = {open: (fid) => {
    if (byId.has(fid)) { openArea(byId.get(fid)); } else { wanted = fid; }
  }};
  function drawPoint(f, target) {
    const p = f.properties;
    if (!f.geometry) { return; }
    const colour = ctx.styles.colour(style, p[style.field]);
    let marker;
    if (f.geometry.type === "Point") {
      const c = f.geometry.coordinates;
      marker = L.marker([c[1], c[0]], {
        keyboard: false, title: p.name || "", riskLayer: id,
        icon: ctx.styles.icon(style, "point-icon", colour)
      });
    } else {
      // An area (an official unit): filled in its class's colour.
      marker = L.geoJSON(f, {interactive: false, renderer: renderer, pane: "areas",
        style: {color: style.outline || "#333", weight: 1, fillColor: colour,
          fillOpacity: 0.35}});
      marker.eachLayer((l) => { l.options.riskLayer = id; });
      marker.on("add", () => {
        areas.add(marker);
        byId.set(f.id, marker);
        if (wanted === f.id) { wanted = null; openArea(marker); }
      });
      marker.on("remove", () => { areas.delete(marker); byId.delete(f.id); });
    }
    marker.feature = f;
    lazyPopup(ctx, marker, p.name || style.name, (el) => ctx.net.item(id, f.id).then((found) => {
      const q = found.properties;
      const list = style.popup.map((k) => {
        const v = q[k];
        if (v === null || v === undefined || v === "") { return field(ctx, id, k, null); }
        if (k === style.field) { return field(ctx, id, k, ctx.styles.label(style, v)); }
        if (typeof v === "number") { return field(ctx, id, k, ctx.words.num(v, v % 1 ? 1 : 0)); }
        return field(ctx, id, k, ctx.styles.published(style, k, v));
      });
      put(el, h("h2", {}, q.name || style.name), rows(list),
        sourceLine(ctx, sourceOf(ctx, f.id)), recordLink(ctx, id, f.id));
    }));
    marker.addTo(target);
  }
  ViewLayer(ctx, id, group, drawPoint, id === "risk_units" ? ctx.t.units : ctx.t.features);
}

/** Opens the popup of the area under a tap that no layer above took (none opened a popup
 * between the map's "preclick" and its "click"). */
function answerTaps(map, areas) {
  let taken = false;
  map.on("preclick", () => { taken = false; });
  map.on("popupopen", () => { taken = true; });
  map.on("click", (e) => {
    if (taken) { return; }
    const {lng, lat} = e.latlng;
    const hit = Array.from(areas).find((m) => contains(m.feature.geometry, lng, lat));
    if (hit) { hit.openPopup(e.latlng); }
  });
}

/** One line of a community's evidence: an incident (its type, date, deaths) or a feature
 * (its name and since when), linked to its record. */
export function evidenceItem(ctx, e) {
  const {t, words, net} = ctx;
  const p = e.props || {};
  const layer = e.source && e.source.layer;
  const kind = e.source ? e.source.kind : null;
  let name;
  let when = "";
  if (kind === "incidents") {
    name = ctx.styles.word("incidents", "type", p.type) || e.id;
    when = words.date(p.date);
    if (p.fatalities !== null && p.fatalities !== undefined) {
      when += " · " + fill(t.deathsCount, {n: words.count(p.fatalities)});
    }
  } else {
    name = p.name || e.id;
    if (p.granted) {
      when = fill(t.granted, {date: words.date(p.granted)});
    } else if (p.operation_start) {
      when = fill(t.operating, {date: words.date(p.operation_start)});
    } else if (p.construction_start) {
      when = fill(t.built, {date: words.date(p.construction_start)});
    }
  }
  return [layer ? h("a", {href: net.itemPage(layer, e.id)}, name) : name,
    when ? [" ", h("span", {class: "when"}, when)] : null];
}
