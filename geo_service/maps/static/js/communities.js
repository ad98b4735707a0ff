/*
 * Communities: one by one (a dot in its class's colour, hollow when the confidence is low),
 * or the public H3 hexagons when too many are in view; town names from our own data; and a
 * popup that says the score in plain words, then each factor, then the evidence behind it.
 */

import {Areas} from "./areas.js";
import {h, put, symbol} from "./dom.js";
import {bboxOf} from "./net.js";
import {lazyPopup, popupOptions, rows, sourceLine, sourceOf} from "./popup.js";
import {fill} from "./text.js";

/** The people-exposed counts a community popup lists, in order. */
const PEOPLE_FIELDS = ["people_mine_5km", "people_mine_10km", "people_runout",
  "people_downstream", "people_incident_reach"];

export function Communities(ctx, group) {
  const {map, t, cfg, net, words, styles} = ctx;
  const cs = styles.communities;
  const api = cfg.api;
  const points = L.featureGroup().addTo(group);
  map.createPane("halos").style.zIndex = 399;
  const haloRenderer = L.canvas({pane: "halos"});
  const hexes = L.geoJSON(null, {
    // Cells holding only incidents (or too few communities: suppressed) say nothing of
    // communities: left out.
    filter: (f) => f.properties.communities !== null,
    style: (f) => ({color: "#222", weight: 0.6, fillOpacity: 0.75,
      fillColor: styles.colour(cs, styles.className(f.properties.max_score))}),
    onEachFeature: (f, layer) => {
      layer.options.riskLayer = "community_risk";
      layer.bindPopup(() => hexPopup(f.properties), popupOptions(map));
    }
  }).addTo(group);
  const hexLegend = document.getElementById("legend-hexagons");
  // Places the public may know only by area (restricted, community_risk_areas): their cell,
  // how many it holds and their scores, drawn while the dots are.
  const areas = Areas(ctx, "community_risk", group, {
    style: (p) => ({color: "#111", weight: 1.2, dashArray: "4 3", fillOpacity: 0.5,
      fillColor: styles.colour(cs, styles.className(p.max_score))}),
    popup: (p) => hexPopup(p, true)
  });
  const keyed = ctx.keyed(points);
  const records = {};
  let seq = 0;
  let wanted = null;
  let labelled = new Set();

  function hexPopup(p, restricted) {
    const cls = styles.className(p.max_score);
    const n = restricted ? p.count : p.communities;
    return h("div", {class: "risk-popup"}, h("h2", {}, t.hexTitle),
      restricted ? h("p", {}, words.plural(t.areaCommunities, n)) : null,
      h("p", {}, fill(t.hexBody, {
        n: words.count(n),
        max: p.max_score === null ? t.noData : words.score(p.max_score),
        "class": styles.label(cs, cls),
        mean: p.mean_score === null ? t.noData : words.score(p.mean_score)
      })),
      h("p", {class: "note"}, restricted ? t.areaNote
        : fill(t.hexNote, {min: words.count(cfg.hexMinCount)})));
  }

  function drawPoints(fc) {
    ctx.drawnFrom("community_risk", fc.features);
    hexes.clearLayers();
    hexLegend.hidden = true;
    const dots = fc.features.filter((f) => f.geometry && f.geometry.type === "Point");
    keyed.update(dots, (f) => f.id, (added) => {
      const features = added.slice().sort((a, b) =>
        (a.properties.score === null ? -1 : a.properties.score)
        - (b.properties.score === null ? -1 : b.properties.score));
      return features.map((f) => {
        const p = f.properties;
        const c = f.geometry.coordinates;
        const cls = p.risk_class in cs.colours ? p.risk_class : "no data";
        // A white ring under every dot (in a pane beneath them all) keeps it apart from a
        // surface of the same colour.
        const halo = L.circleMarker([c[1], c[0]], {radius: cs.size / 2 + 1.5, stroke: false,
          fillColor: "#fff", fillOpacity: 0.8, interactive: false,
          renderer: haloRenderer}).addTo(points);
        // Low confidence is hollow: a ring of the class's colour round a white centre.
        const hollow = cls !== "no data" && p.confidence === "low";
        const marker = L.circleMarker([c[1], c[0]], {
          radius: cs.size / 2, weight: cls === "no data" ? 1.5 : (hollow ? 3 : 1),
          color: hollow ? styles.colour(cs, cls) : cs.outline,
          dashArray: cls === "no data" ? "2 2" : null,
          fillColor: hollow ? "#fff" : styles.colour(cs, cls), fillOpacity: 1,
          riskLayer: "community_risk"
        }).addTo(points);
        marker.feature = f;
        lazyPopup(ctx, marker, p.name, (el, refresh) => community(f.id, p.name, el, refresh));
        return [f.id, [halo, marker]];
      });
    });
    ctx.data.communities = dots.length;
    ctx.data.grouped = "0";
    shownCount = fc.numberMatched;
    pointsStatus();
    label();
    if (wanted) {
      let hit = null;
      points.eachLayer((l) => { if (l.feature && l.feature.id === wanted) { hit = l; } });
      if (hit) { wanted = null; hit.openPopup(); }
    }
  }

  // Town names from our own communities, the most populous first, more as one zooms in:
  // the map reads without the outside basemap.
  function label() {
    const z = map.getZoom();
    const most = z >= 11 ? 80 : (z >= 9 ? 30 : (z >= 7 ? 12 : 0));
    const view = map.getBounds();
    const markers = [];
    points.eachLayer((l) => {
      if (l.feature && l.feature.properties.name && view.contains(l.getLatLng())) {
        markers.push(l);
      }
    });
    markers.sort((a, b) =>
      (b.feature.properties.population || 0) - (a.feature.properties.population || 0));
    const next = new Set(markers.slice(0, most));
    // Names that stay are left as they are (no flicker); the others come and go.
    labelled.forEach((m) => { if (!next.has(m)) { m.unbindTooltip(); } });
    next.forEach((m) => {
      if (!labelled.has(m)) {
        m.bindTooltip(m.feature.properties.name, {permanent: true, direction: "right",
          offset: [5, 0], className: "town-label", interactive: false});
      }
    });
    labelled = next;
    ctx.data.labels = labelled.size;
  }

  let shownCount = 0;
  function pointsStatus() {
    const byArea = areas.inView();
    ctx.status("community_risk-status", words.plural(t.communities, shownCount)
      + (byArea ? "; " + words.plural(t.areaCount, byArea) : ""));
  }

  function drawHexes(cells, total) {
    ctx.drawnSources.community_risk = null;  // cells of every source: the layer's credit
    ctx.credit();
    keyed.clear();
    areas.clear();
    hexes.clearLayers();
    hexes.addData(cells);
    hexLegend.hidden = false;
    ctx.data.communities = 0;
    ctx.data.grouped = String(hexes.getLayers().length);
    ctx.status("community_risk-status", words.plural(t.grouped, total));
  }

  function load() {
    if (!ctx.shown("community_risk")) { return; }
    const mine = ++seq;
    const bbox = bboxOf(map.getBounds());
    // How many first (one feature): the view's communities, or hexagons if too many.
    net.track(net.getJSON(api + "community_risk/items?limit=1&properties=score&bbox=" + bbox)
      .then((head) => {
        if (mine !== seq) { return null; }
        if (head.numberMatched <= cfg.viewLimit) {
          return Promise.all([
            net.getJSON(api + "community_risk/items?limit=" + cfg.viewLimit
              + "&properties=" + cs.properties.join(",") + "&bbox=" + bbox)
              .then((fc) => { if (mine === seq) { drawPoints(fc); } }),
            areas.load(map.getBounds()).then(() => { if (mine === seq) { pointsStatus(); } })
          ]);
        }
        const z = map.getZoom();
        const resolution = z <= 5 ? 3 : (z <= 8 ? 5 : 7);
        return net.getJSON(api + "risk_hex/items?limit=10000"
          + "&properties=communities,max_score,mean_score&resolution=" + resolution
          + "&bbox=" + bbox).then((cells) => {
          if (mine === seq) { drawHexes(cells, head.numberMatched); }
        });
      })).catch(() => ctx.status("community_risk-status", t.failed));
  }

  /** The people of the place near each kind of evidence, counted as the units' are
   * (labels from the units' definition; nothing when no count is above zero). */
  function exposed(p) {
    const labels = (styles.of("risk_units") || {}).fields || {};
    const rows = PEOPLE_FIELDS.filter((k) => p[k] > 0 && labels[k])
      .map((k) => h("li", {}, labels[k] + ": " + words.count(p[k])));
    if (!rows.length) { return null; }
    const source = ((styles.of("risk_units") || {}).values || {}).people_source || {};
    return h("div", {class: "people"}, h("ul", {}, rows),
      p.people_source ? h("p", {class: "where"}, (labels.people_source || "") + " "
        + (source[p.people_source] || p.people_source)) : null);
  }

  // ---- a community's popup: score, plain words, each factor, the evidence behind it ----
  function record(id) {
    if (!records[id]) {
      records[id] = net.getJSON(net.itemUrl("community_risk", id)).then((f) => f.properties);
      records[id].catch(() => { delete records[id]; });
    }
    return records[id];
  }

  function community(id, name, el, refresh) {
    return record(id).then((p) => {
      const cls = p.risk_class in cs.colours ? p.risk_class : "no data";
      const where = [cfg.countries[p.country] || p.country];
      const people = p.people ?? p.population;
      if (people) { where.push(words.plural(t.people, people)); }
      const parts = [h("h2", {}, name), h("p", {class: "where"}, where.join(" · "))];
      if (p.score === null || p.score === undefined) {
        parts.push(h("p", {class: "score"}, h("i", {class: "dot nodata"}), t.noScore));
      } else {
        parts.push(h("p", {class: "score"}, symbol(cs.path, styles.colour(cs, cls)),
          h("strong", {}, fill(t.scoreLine, {score: words.score(p.score)})), " · ",
          styles.label(cs, cls)));
        if (p.confidence) {
          const why = (p.confidence_reasons || []).map((r) => t.reasons[r] || r);
          parts.push(h("p", {class: "confidence " + p.confidence},
            (t.confidence[p.confidence] || p.confidence)
            + (why.length ? " (" + why.join("; ") + ")" : "")));
        }
      }
      parts.push(h("div", {class: "summary"}, summary(p).map((line) =>
        h("p", {"data-factor": line[0]}, line[1]))));
      parts.push(exposed(p));
      const available = p.factors_available || [];
      const missing = (p.factors_missing || []).map((f) => cs.fields[f] || f);
      if (missing.length && available.length) {
        parts.push(h("p", {class: "caveat"}, words.plural(t.basedOn, available.length, {
          total: words.count(available.length + missing.length),
          missing: missing.join(", ")
        }) + " " + t.absence));
      }
      cfg.factors.forEach((f) => {
        const contribution = p[f + "_contribution"];
        const heading = h("h3", {}, h("span", {class: "factor"}, cs.fields[f] || f));
        if (contribution === null || contribution === undefined) {
          parts.push(h("section", {class: "factor nodata"}, heading, h("p", {}, t.noCoverage)));
          return;
        }
        heading.append(" ", h("span", {class: "points"},
          "+" + words.num(contribution, 1) + " " + t.points));
        const bar = h("i", {});
        bar.style.width = Math.max(0, Math.min(100, contribution)) + "%";
        parts.push(h("section", {class: "factor"}, heading,
          h("div", {class: "bar", "aria-hidden": "true"}, bar),
          h("p", {class: "level"}, fill(t.level, {value: words.num(p[f + "_normalised"], 2)})),
          rows(details(f, p)), h("div", {class: "evidence", "data-factor": f})));
      });
      parts.push(h("p", {}, h("a", {href: net.itemPage("community_risk", id)}, t.record)));
      put(el, ...parts);
      refresh();
      return Promise.all([evidence(el, p, id), zone(el, p).then(refresh)]);
    });
  }

  // In plain words: one sentence per factor, those that carried weight first, then those
  // that found nothing, then what no data covers.
  function summary(p) {
    let lines = [];
    const quiet = [];
    cfg.factors.forEach((f) => {
      const c = p[f + "_contribution"];
      if (c === null || c === undefined) { return; }
      const text = sentence(f, p, c > 0);
      if (text) { (c > 0 ? lines : quiet).push([f, text]); }
    });
    lines = lines.concat(quiet);
    const missing = (p.factors_missing || []).filter((f) => cfg.factors.indexOf(f) >= 0);
    if (missing.length) {
      lines.push(["missing", fill(t.sentMissing, {
        missing: missing.map((f) => t.evidenceOf[f] || cs.fields[f] || f).join(t.or)
      })]);
    }
    return lines;
  }

  function sentence(f, p, weighed) {
    if (f === "concession_pressure") {
      return weighed && p.concession_pressure_nearest_km !== null
        ? fill(t.sentMine, {km: words.km(p.concession_pressure_nearest_km)}) : t.sentMineNone;
    }
    if (f === "tailings_exposure") {
      if (!weighed) { return t.sentDamsNone; }
      const out = [];
      if (p.tailings_exposure_failures_in_reach) {
        out.push(words.plural(t.sentFailures, p.tailings_exposure_failures_in_reach));
      }
      const dams = (p.tailings_exposure_dams_in_runout || 0)
        + (p.tailings_exposure_dams_downstream || 0);
      if (dams) {
        out.push(words.plural(t.sentDams, dams, {
          p: words.percent(p.tailings_exposure_reach_probability || 0)
        }));
      }
      return out.join(" ");
    }
    if (f === "incident_intensity") {
      if (!weighed) { return t.sentIncidentsNone; }
      return words.plural(t.sentIncidents, p.incident_intensity_incidents_in_reach || 0, {
        deaths: words.plural(t.deaths, p.incident_intensity_fatalities_in_reach || 0),
        date: words.date(p.incident_intensity_latest_incident)
      });
    }
    return null;
  }

  // When the nearest mine is a point standing for a whole province, the sentence says so.
  function zone(el, p) {
    const first = (p.concession_pressure_evidence || [])[0];
    const source = first && sourceOf(ctx, first);
    const line = el.querySelector('.summary p[data-factor="concession_pressure"]');
    if (!line || !source || !source.layer || !(p.concession_pressure_contribution > 0)) {
      return Promise.resolve();
    }
    return net.item(source.layer, first).then((feature) => {
      const q = feature.properties;
      if (q.location_precision !== "admin1" && q.location_precision !== "region") { return; }
      line.textContent = fill(t.sentMineZone, {
        km: words.km(p.concession_pressure_nearest_km),
        radius: words.km((q.footprint_radius_m || 0) / 1000),
        publisher: source.publisher,
        place: q.location_memo || q.adm1 || q.name
      });
    }, () => null);
  }

  function evidenceCount(factor, p, listed) {
    let n = listed;
    if (factor === "concession_pressure") {
      let widest = null;
      Object.keys(p).forEach((k) => {
        const m = /^concession_pressure_within_(\d+)km$/.exec(k);
        if (m && (widest === null || +m[1] > widest)) { widest = +m[1]; }
      });
      if (widest !== null) { n = p["concession_pressure_within_" + widest + "km"]; }
    } else if (factor === "tailings_exposure") {
      n = (p.tailings_exposure_dams_in_runout || 0) + (p.tailings_exposure_dams_downstream || 0);
    } else if (factor === "incident_intensity") {
      n = p.incident_intensity_incidents_in_reach;
    }
    return Math.max(n || 0, listed);
  }

  function details(factor, p) {
    const count = (v) => (v === null || v === undefined ? null : words.count(v));
    if (factor === "concession_pressure") {
      return [[t.nearestSite, p.concession_pressure_nearest_km === null ? null
        : words.km(p.concession_pressure_nearest_km)],
      [fill(t.sitesWithin, {km: words.count(10)}), count(p.concession_pressure_within_10km)]];
    }
    if (factor === "tailings_exposure") {
      return [[t.failureInReach, p.tailings_exposure_failures_in_reach
        ? words.count(p.tailings_exposure_failures_in_reach) : null],
      [t.reachChance, p.tailings_exposure_reach_probability
        ? words.percent(p.tailings_exposure_reach_probability) : null],
      [t.damsInRunout, count(p.tailings_exposure_dams_in_runout)],
      [t.damsUpstream, count(p.tailings_exposure_dams_downstream)],
      [t.nearestDam, p.tailings_exposure_nearest_dam_km === null ? null
        : words.km(p.tailings_exposure_nearest_dam_km)]];
    }
    if (factor === "incident_intensity") {
      return [[t.incidentsInReach, count(p.incident_intensity_incidents_in_reach)],
        [t.deathsInReach, count(p.incident_intensity_fatalities_in_reach)],
        [t.latestIncident, words.date(p.incident_intensity_latest_incident)]];
    }
    return [];
  }

  function evidence(el, p, id) {
    const jobs = [];
    cfg.factors.forEach((f) => {
      const box = el.querySelector('div.evidence[data-factor="' + f + '"]');
      const ids = p[f + "_evidence"] || [];
      // Evidence the public may not see is left out of the list and counted here.
      const withheld = p[f + "_evidence_withheld"] || 0;
      if (!box || (!ids.length && !withheld && !evidenceCount(f, p, 0))) { return; }
      const total = evidenceCount(f, p, ids.length + withheld);
      const first = ids.slice(0, cfg.evidenceShown);
      put(box, h("h4", {}, t.evidence), h("p", {}, t.loading));
      jobs.push(Promise.all(first.map((eid) => {
        const source = sourceOf(ctx, eid);
        if (!source || !source.layer) { return Promise.resolve({id: eid, source: source}); }
        return net.item(source.layer, eid).then(
          (feature) => ({id: eid, source: source, props: feature.properties}),
          (error) => ({id: eid, source: source, hidden: error.status === 404}));
      })).then((found) => {
        const items = [];
        let hidden = withheld;
        const sources = [];
        found.forEach((e) => {
          if (e.hidden) { hidden += 1; return; }
          if (e.source && sources.indexOf(e.source.key) < 0) { sources.push(e.source.key); }
          items.push(h("li", {}, ctx.evidenceItem(e)));
        });
        const notes = [];
        const later = ids.length - first.length;
        if (later > 0) {
          notes.push(h("a", {href: net.itemPage("community_risk", id)},
            words.plural(t.inRecord, later)));
        }
        if (total > ids.length + withheld) {
          notes.push(words.plural(t.notListed, total - ids.length - withheld));
        }
        if (hidden) { notes.push(words.plural(t.notPublic, hidden)); }
        put(box, h("h4", {}, t.evidence),
          items.length ? h("ul", {}, items) : null,
          notes.length ? h("p", {class: "more"}, notes.flatMap((n, i) => (i ? [" · ", n] : [n])))
            : null,
          sources.map((k) => sourceLine(ctx, Object.assign({key: k}, cfg.sources[k]))));
      }));
    });
    return Promise.all(jobs);
  }

  /** The community dot nearest a point of the map's container, within ``px`` pixels. */
  function at(point, px) {
    let best = null;
    let bestD = px;
    points.eachLayer((l) => {
      if (!l.feature || !l.getLatLng) { return; }
      const d = map.latLngToContainerPoint(l.getLatLng()).distanceTo(point);
      if (d <= bestD) { best = l; bestD = d; }
    });
    return best;
  }

  group.on("add", load);
  map.on("moveend", load);
  load();
  return {points, hexes, at, open: (id) => { wanted = id; }};
}
