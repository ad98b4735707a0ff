/*
 * What a map page does as it is used (geo_service/maps/page.py writes the page).
 *
 * Every layer comes from the service's API by URL, only for the view: communities one by one
 * (or as the public H3 hexagons when too many are in view), mine sites and tailings dams,
 * and incidents grouped in clusters (supercluster), so that any number of them stays smooth
 * while the year filter and the count still answer at once. A popup fetches what it shows
 * only when it opens: a community's record, then a few of the features of its evidence.
 * The legend follows the layers shown, the attribution credits what is drawn, and the view
 * (centre, zoom, layers, years, language) is kept in the URL, so a shared link reopens it.
 *
 * Test hooks (document.body.dataset): communities, grouped, incidents, incidentMarkers,
 * concessions, dams, basemap, and drawn ("1" once every shown layer has drawn its view).
 */
(function () {
  "use strict";

  var SMALL = "(max-width: 600px), (max-height: 480px)";

  function esc(value) {
    return String(value === null || value === undefined ? "" : value).replace(
      /[&<>"']/g,
      function (c) { return "&#" + c.charCodeAt(0) + ";"; }
    );
  }

  function fill(text, values) {
    return String(text).replace(/\{(\w+)\}/g, function (whole, key) {
      return Object.prototype.hasOwnProperty.call(values, key) ? values[key] : whole;
    });
  }

  function start(map, cfg, layers) {
    var t = cfg.t;
    var lang = cfg.lang;
    var api = cfg.api;
    var data = document.body.dataset;
    var small = window.matchMedia(SMALL).matches;
    var numberFormats = {};
    var pluralRules = new Intl.PluralRules(lang);
    var dateFormat = new Intl.DateTimeFormat(lang, {
      year: "numeric", month: "short", day: "numeric", timeZone: "UTC"
    });
    var compactFormat = new Intl.NumberFormat(lang, {notation: "compact"});
    window.riskMap = map;

    // ---- words and numbers in the page's language ---------------------------------------
    function num(value, digits) {
      var key = String(digits);
      if (!numberFormats[key]) {
        numberFormats[key] = new Intl.NumberFormat(lang, {
          minimumFractionDigits: digits, maximumFractionDigits: digits
        });
      }
      return numberFormats[key].format(value);
    }
    function count(value) { return num(value, 0); }
    // A score as published: one decimal at most (the class is that of this very number).
    var scoreFormat = new Intl.NumberFormat(lang, {maximumFractionDigits: 1});
    function scoreText(value) { return scoreFormat.format(value); }
    function percent(p) {
      return fill(t.percent, {value: num(100 * p, p < 0.1 ? 1 : 0)});
    }
    function plural(forms, n, values) {
      var text = forms[pluralRules.select(n) === "one" ? 0 : 1];
      return fill(text, Object.assign({n: count(n)}, values || {}));
    }
    function date(text) {
      if (!text) { return ""; }
      var m = /^(\d{4})-(\d{2})-(\d{2})/.exec(text) || null;
      var d = m ? [m[1], m[2], m[3]] : null;
      var b = /^(\d{2})\/(\d{2})\/(\d{4})$/.exec(text);
      if (b) { d = [b[3], b[2], b[1]]; }
      if (!d) { return esc(text); }
      return dateFormat.format(new Date(Date.UTC(+d[0], +d[1] - 1, +d[2])));
    }
    function km(value) {
      return fill(t.km, {value: num(value, value < 10 ? 1 : 0)});
    }
    function className(score) {
      if (score === null || score === undefined) { return "no data"; }
      var names = cfg.classes;  // lowest first (object keys have no order to rely on)
      var k = 0;
      cfg.thresholds.forEach(function (step, i) { if (score >= step) { k = i + 1; } });
      return names[Math.min(k, names.length - 1)];
    }

    // ---- requests ----------------------------------------------------------------------
    // "drawn" once every shown layer has drawn its view; drawnAt (ms since navigation)
    // after the frame that paints it, for the benchmark.
    var pending = 0;
    var afterFirstDraw = [];
    data.drawn = "0";
    function done() {
      pending -= 1;
      if (!pending) {
        window.requestAnimationFrame(function () {
          if (pending) { return; }
          data.drawnAt = Math.round(performance.now());
          data.drawn = "1";
          afterFirstDraw.splice(0).forEach(function (f) { f(); });
        });
      }
    }
    function track(promise) {
      pending += 1;
      data.drawn = "0";
      return promise.then(function (value) { done(); return value; },
                          function (error) { done(); throw error; });
    }
    function getJSON(url) {
      return fetch(url, {headers: {Accept: "application/geo+json, application/json"}})
        .then(function (r) {
          if (!r.ok) {
            var error = new Error("HTTP " + r.status);
            error.status = r.status;
            throw error;
          }
          return r.json();
        });
    }
    function itemUrl(layer, id) {
      return api + layer + "/items/" + encodeURIComponent(id);
    }
    function itemPage(layer, id) {
      return itemUrl(layer, id) + "?f=html";
    }
    function bboxOf(bounds) {
      return [Math.max(bounds.getWest(), -180), Math.max(bounds.getSouth(), -90),
              Math.min(bounds.getEast(), 180), Math.min(bounds.getNorth(), 90)]
        .map(function (v) { return v.toFixed(5); }).join(",");
    }
    function shown(id) { return !!layers[id] && map.hasLayer(layers[id]); }
    function setStatus(id, text) {
      var el = document.getElementById(id);
      if (el) { el.textContent = text; }
    }
    function sourceOf(id) {
      var key = String(id).split(":")[0];
      return cfg.sources[key] ? Object.assign({key: key}, cfg.sources[key]) : null;
    }
    function sourceLine(source) {
      if (!source) { return ""; }
      var name = source.url
        ? '<a href="' + esc(source.url) + '" rel="noopener">' + esc(source.title) + "</a>"
        : esc(source.title);
      return '<p class="source">' + fill(esc(t.sourceLine), {source: name}) + ", "
        + esc(source.publisher)
        + (source.licence ? " (" + esc(source.licence) + ")" : "") + "</p>";
    }
    function rows(pairs) {
      var body = pairs.filter(function (p) {
        return p[1] !== null && p[1] !== undefined && p[1] !== "";
      }).map(function (p) {
        return "<tr><th scope=\"row\">" + esc(p[0]) + "</th><td>" + p[1] + "</td></tr>";
      }).join("");
      return body ? "<table>" + body + "</table>" : "";
    }
    function popupOptions() {
      return {maxWidth: Math.min(340, map.getSize().x - 40), minWidth: 220,
              maxHeight: Math.max(160, Math.min(460, map.getSize().y - 90)),
              autoPanPaddingTopLeft: [10, 50], autoPanPaddingBottomRight: [10, 10]};
    }
    function lazyPopup(marker, title, fill) {
      // The content is made when the popup opens (and fetched then), never for every point.
      marker.bindPopup("", popupOptions());
      marker.on("popupopen", function (e) {
        var popup = e.popup;
        var el = L.DomUtil.create("div", "risk-popup");
        el.innerHTML = "<h2>" + esc(title) + "</h2><p>" + esc(t.loading) + "</p>";
        popup.setContent(el);
        var refresh = function () { if (popup.isOpen()) { popup.update(); } };
        fill(el, refresh).then(refresh, function () {
          el.innerHTML = "<h2>" + esc(title) + "</h2><p>" + esc(t.failed) + "</p>";
          refresh();
        });
      });
    }

    /*
     * The features of a layer drawn by key: a new view adds what is new and removes what
     * left it, so a feature that stays (and its open popup) is never redrawn; the popup
     * panning the map into view does not close it.
     */
    function Keyed(target) {
      var drawn = {};
      function open(layer) {
        return (layer.isPopupOpen && layer.isPopupOpen())
          || (layer.getLayers && layer.getLayers().some(open));
      }
      return {
        update: function (items, keyOf, make) {
          var next = {};
          items.forEach(function (item) { next[keyOf(item)] = true; });
          Object.keys(drawn).forEach(function (key) {
            if (!next[key] && !drawn[key].some(open)) {
              drawn[key].forEach(function (layer) { target.removeLayer(layer); });
              delete drawn[key];
            }
          });
          var added = items.filter(function (item) { return !drawn[keyOf(item)]; });
          make(added).forEach(function (pair) { drawn[pair[0]] = pair[1]; });
        },
        clear: function () { target.clearLayers(); drawn = {}; }
      };
    }

    // ---- controls in the page's language ------------------------------------------------
    var attribution = map.attributionControl;
    attribution.setPrefix('<a href="https://leafletjs.com" title="' + esc(t.leaflet)
      + '">Leaflet</a>');
    attribution.addAttribution(esc(cfg.naturalEarth));
    // The surface's own credit is the data credit below, which follows the layers shown.
    if (layers.risk_surface) {
      attribution.removeAttribution(layers.risk_surface.getAttribution());
      layers.risk_surface.options.attribution = "";
    }
    var toggle = layers.control.getContainer().querySelector(".leaflet-control-layers-toggle");
    if (toggle) {
      toggle.title = t.layers;
      toggle.setAttribute("aria-label", t.layers);
    }
    map.on("popupopen", function (e) {
      var close = e.popup.getElement().querySelector(".leaflet-popup-close-button");
      if (close) {
        close.title = t.closePopup;
        close.setAttribute("aria-label", t.closePopup);
      }
    });
    // On a small screen the attribution is one line; a tap (or Enter) shows all of it.
    var attributionEl = attribution.getContainer();
    attributionEl.tabIndex = 0;
    attributionEl.addEventListener("click", function (e) {
      if (e.target.tagName !== "A") { attributionEl.classList.toggle("open"); }
    });
    attributionEl.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && e.target === attributionEl) {
        attributionEl.classList.toggle("open");
      }
    });

    // The outside basemap is credited only while its tiles arrive (offline: none do).
    var outsideCredited = true;
    var outsideTiles = 0;
    var outsideCredit = layers.basemap.getAttribution();
    layers.basemap.on("tileload", function () {
      outsideTiles += 1;
      if (!outsideCredited && map.hasLayer(layers.basemap)) {
        attribution.addAttribution(outsideCredit);
        outsideCredited = true;
      }
    });
    layers.basemap.on("load", function () {
      if (!outsideTiles && outsideCredited && map.hasLayer(layers.basemap)) {
        attribution.removeAttribution(outsideCredit);
        outsideCredited = false;
      }
    });
    layers.basemap.on("remove", function () { outsideCredited = true; outsideTiles = 0; });

    // Data credit: the publishers of the layers shown, and the link to every source's terms.
    var dataCredit = null;
    function credit() {
      if (dataCredit) { attribution.removeAttribution(dataCredit); }
      var parts = cfg.layers.filter(shown);
      var text = parts.length ? cfg.attribution[parts[0]] : null;
      if (parts.length > 1) {
        var names = [];
        parts.forEach(function (id) {
          cfg.publishers[id].forEach(function (p) {
            if (names.indexOf(p) < 0) { names.push(p); }
          });
        });
        text = cfg.creditTemplate.replace("{publishers}", esc(names.join(", ")));
      }
      dataCredit = text;
      if (text) { attribution.addAttribution(text); }
    }

    // The offline basemap, beneath the outside tiles: shows wherever they fail.
    map.createPane("fallback").style.zIndex = 150;
    map.getContainer().style.background = "#c6dbe8";
    var landStyles = {
      land: {color: "#9e9e9e", weight: 0.8, fillColor: "#f2efe9", fillOpacity: 1},
      lake: {color: "#8fb8cf", weight: 0.5, fillColor: "#c6dbe8", fillOpacity: 1},
      river: {color: "#7fa9c4", weight: 1.2, fill: false}
    };
    // Fetched at once, drawn once the data is (or after 1.5 s): drawing its outlines is the
    // heaviest work of a page, and what people came for is the data.
    var land = null;
    var landDue = false;
    function drawLand() {
      if (!land || !landDue || data.basemap) { return; }
      L.geoJSON(land, {pane: "fallback", interactive: false,
        style: function (f) { return landStyles[f.properties.kind]; }}).addTo(map);
      data.basemap = land.features.length;
    }
    getJSON(cfg.basemapUrl).then(function (fc) { land = fc; drawLand(); });
    afterFirstDraw.push(function () { landDue = true; drawLand(); });
    setTimeout(function () { landDue = true; drawLand(); }, 1500);

    // ---- legend: one section per layer, shown while the layer is --------------------------
    var legendEl = document.getElementById("risk-legend");
    var Legend = L.Control.extend({
      options: {position: "bottomleft"},
      onAdd: function () {
        L.DomEvent.disableClickPropagation(legendEl);
        L.DomEvent.disableScrollPropagation(legendEl);
        return legendEl;
      }
    });
    new Legend().addTo(map);
    if (small) { document.getElementById("legend-details").removeAttribute("open"); }
    function syncLegend() {
      legendEl.querySelectorAll("section[data-layers]").forEach(function (section) {
        section.hidden = !section.dataset.layers.split(" ").some(shown);
      });
      var filter = document.getElementById("time-filter");
      if (filter) { filter.hidden = !shown("incidents"); }
    }

    // ---- communities: one by one, or the public hexagons when too many are in view -------
    var drawnCount = {};
    function Communities(group) {
      var points = L.featureGroup().addTo(group);
      map.createPane("halos").style.zIndex = 399;
      var haloRenderer = L.canvas({pane: "halos"});
      var hexes = L.geoJSON(null, {
        // Cells holding only incidents (or too few communities: suppressed) say nothing of
        // communities: left out.
        filter: function (f) { return f.properties.communities !== null; },
        style: function (f) {
          return {color: "#222", weight: 0.6, fillOpacity: 0.75,
                  fillColor: cfg.colours[className(f.properties.max_score)]};
        },
        onEachFeature: function (f, layer) {
          layer.options.riskLayer = "community_risk";
          layer.bindPopup(function () { return hexPopup(f.properties); }, popupOptions());
        }
      }).addTo(group);
      var hexLegend = document.getElementById("legend-hexagons");
      var seq = 0;
      var records = {};

      function hexPopup(p, restricted) {
        var cls = className(p.max_score);
        var n = restricted ? p.count : p.communities;
        return '<div class="risk-popup"><h2>' + esc(t.hexTitle) + "</h2>"
          + (restricted ? "<p>" + esc(plural(t.areaCommunities, n)) + "</p>" : "") + "<p>"
          + esc(fill(t.hexBody, {
            n: count(n),
            max: p.max_score === null ? t.noData : scoreText(p.max_score),
            "class": t.classes[cls],
            mean: p.mean_score === null ? t.noData : scoreText(p.mean_score)
          })) + '</p><p class="note">' + esc(restricted ? t.areaNote
            : fill(t.hexNote, {min: count(cfg.hexMinCount)})) + "</p></div>";
      }

      var keyed = Keyed(points);
      function drawPoints(fc) {
        hexes.clearLayers();
        hexLegend.hidden = true;
        keyed.update(fc.features, function (f) { return f.id; }, function (added) {
          var features = added.slice().sort(function (a, b) {
            return (a.properties.score === null ? -1 : a.properties.score)
              - (b.properties.score === null ? -1 : b.properties.score);
          });
          return features.map(function (f) {
            var p = f.properties;
            if (f.geometry.type !== "Point") {  // restricted places, shown only as their cell
              var area = L.geoJSON(f, {style: {color: "#111", weight: 1.2, dashArray: "4 3",
                fillOpacity: 0.5, fillColor: cfg.colours[className(p.max_score)]}}).addTo(points);
              area.eachLayer(function (l) {
                l.options.riskLayer = "community_risk";
                l.bindPopup(function () { return hexPopup(p, true); }, popupOptions());
              });
              return [f.id, [area]];
            }
            var c = f.geometry.coordinates;
            var cls = p.risk_class in cfg.colours ? p.risk_class : "no data";
            // A white ring under every dot (in a pane beneath them all) keeps it apart from
            // a surface of the same colour.
            var halo = L.circleMarker([c[1], c[0]], {radius: 6.5, stroke: false,
              fillColor: "#fff", fillOpacity: 0.8, interactive: false,
              renderer: haloRenderer}).addTo(points);
            // Low confidence is hollow: a ring of the class's colour round a white centre.
            var hollow = cls !== "no data" && p.confidence === "low";
            var marker = L.circleMarker([c[1], c[0]], {
              radius: 5, weight: cls === "no data" ? 1.5 : (hollow ? 3 : 1),
              color: hollow ? cfg.colours[cls] : "#111",
              dashArray: cls === "no data" ? "2 2" : null,
              fillColor: hollow ? "#fff" : cfg.colours[cls], fillOpacity: 1,
              riskLayer: "community_risk"
            }).addTo(points);
            marker.feature = f;
            lazyPopup(marker, p.name, function (el, refresh) {
              return community(f.id, p.name, el, refresh);
            });
            return [f.id, [halo, marker]];
          });
        });
        data.communities = fc.numberReturned;
        data.grouped = "0";
        setStatus("community-status", plural(t.communities, fc.numberMatched));
      }

      function drawHexes(cells, total) {
        keyed.clear();
        hexes.clearLayers();
        hexes.addData(cells);
        hexLegend.hidden = false;
        data.communities = 0;
        data.grouped = String(hexes.getLayers().length);
        setStatus("community-status", plural(t.grouped, total));
      }

      function load() {
        if (!shown("community_risk")) { return; }
        var mine = ++seq;
        var bbox = bboxOf(map.getBounds());
        // How many first (one feature): the view's communities, or hexagons if too many.
        track(getJSON(api + "community_risk/items?limit=1&properties=score&bbox=" + bbox)
          .then(function (head) {
            if (mine !== seq) { return null; }
            if (head.numberMatched <= cfg.viewLimit) {
              return getJSON(api + "community_risk/items?limit=" + cfg.viewLimit
                + "&properties=name,score,risk_class,confidence"
                + (cfg.generalised.community_risk ? ",generalised,count,max_score,mean_score" : "")
                + "&bbox=" + bbox).then(function (fc) {
                if (mine === seq) { drawPoints(fc); }
              });
            }
            var z = map.getZoom();
            var resolution = z <= 5 ? 3 : (z <= 8 ? 5 : 7);
            return getJSON(api + "risk_hex/items?limit=10000"
              + "&properties=communities,max_score,mean_score&resolution=" + resolution
              + "&bbox=" + bbox).then(function (cells) {
              if (mine === seq) { drawHexes(cells, head.numberMatched); }
            });
          })).catch(function () { setStatus("community-status", t.failed); });
      }

      // ---- a community's popup: score, factor breakdown, and the evidence behind it ----
      function record(id) {
        if (!records[id]) {
          records[id] = getJSON(itemUrl("community_risk", id)).then(function (f) {
            return f.properties;
          });
          records[id].catch(function () { delete records[id]; });
        }
        return records[id];
      }

      function evidenceCount(factor, p, listed) {
        var n = listed;
        if (factor === "concession_pressure") {
          var widest = null;
          Object.keys(p).forEach(function (k) {
            var m = /^concession_pressure_within_(\d+)km$/.exec(k);
            if (m && (widest === null || +m[1] > widest)) { widest = +m[1]; }
          });
          if (widest !== null) { n = p["concession_pressure_within_" + widest + "km"]; }
        } else if (factor === "tailings_exposure") {
          n = (p.tailings_exposure_dams_in_runout || 0)
            + (p.tailings_exposure_dams_downstream || 0);
        } else if (factor === "incident_intensity") {
          n = p.incident_intensity_incidents_in_reach;
        }
        return Math.max(n || 0, listed);
      }

      function details(factor, p) {
        if (factor === "concession_pressure") {
          return [[t.nearestSite, p.concession_pressure_nearest_km === null ? null
                   : esc(km(p.concession_pressure_nearest_km))],
                  [fill(t.sitesWithin, {km: count(10)}),
                   p.concession_pressure_within_10km === null ? null
                   : esc(count(p.concession_pressure_within_10km))]];
        }
        if (factor === "tailings_exposure") {
          return [[t.failureInReach, p.tailings_exposure_failures_in_reach
                   ? esc(count(p.tailings_exposure_failures_in_reach)) : null],
                  [t.reachChance, p.tailings_exposure_reach_probability
                   ? esc(percent(p.tailings_exposure_reach_probability)) : null],
                  [t.damsInRunout, p.tailings_exposure_dams_in_runout === null ? null
                   : esc(count(p.tailings_exposure_dams_in_runout))],
                  [t.damsUpstream, p.tailings_exposure_dams_downstream === null ? null
                   : esc(count(p.tailings_exposure_dams_downstream))],
                  [t.nearestDam, p.tailings_exposure_nearest_dam_km === null ? null
                   : esc(km(p.tailings_exposure_nearest_dam_km))]];
        }
        if (factor === "incident_intensity") {
          return [[t.incidentsInReach, p.incident_intensity_incidents_in_reach === null ? null
                   : esc(count(p.incident_intensity_incidents_in_reach))],
                  [t.deathsInReach, p.incident_intensity_fatalities_in_reach === null ? null
                   : esc(count(p.incident_intensity_fatalities_in_reach))],
                  [t.latestIncident, esc(date(p.incident_intensity_latest_incident))]];
        }
        return [];
      }

      function community(id, name, el, refresh) {
        return record(id).then(function (p) {
          var cls = p.risk_class in cfg.colours ? p.risk_class : "no data";
          var where = [cfg.countries[p.country] || p.country];
          if (p.population) { where.push(plural(t.people, p.population)); }
          var parts = ["<h2>" + esc(name) + "</h2>",
            '<p class="where">' + esc(where.join(" · ")) + "</p>"];
          if (p.score === null || p.score === undefined) {
            parts.push('<p class="score"><i class="dot nodata"></i>' + esc(t.noScore) + "</p>");
          } else {
            parts.push('<p class="score"><i class="dot" style="background:'
              + cfg.colours[cls] + '"></i><strong>'
              + esc(fill(t.scoreLine, {score: scoreText(p.score)})) + "</strong> · "
              + esc(t.classes[cls]) + "</p>");
            if (p.confidence) {
              var why = (p.confidence_reasons || []).map(function (r) {
                return t.reasons[r] || r;
              });
              parts.push('<p class="confidence ' + esc(p.confidence) + '">'
                + esc(t.confidence[p.confidence] || p.confidence)
                + (why.length ? ": " + esc(why.join("; ")) : "") + "</p>");
            }
          }
          var available = p.factors_available || [];
          var missing = (p.factors_missing || []).map(function (f) {
            return t.factors[f] || f;
          });
          if (missing.length && available.length) {
            parts.push('<p class="caveat">' + esc(fill(t.basedOn, {
              n: count(available.length),
              total: count(available.length + missing.length),
              missing: missing.join(", ")
            })) + " " + esc(t.absence) + "</p>");
          }
          cfg.factors.forEach(function (f) {
            var contribution = p[f + "_contribution"];
            var level = p[f + "_normalised"];
            var head = '<h3><span class="factor">' + esc(t.factors[f] || f) + "</span>";
            if (contribution === null || contribution === undefined) {
              parts.push('<section class="factor nodata">' + head + "</h3><p>"
                + esc(t.noCoverage) + "</p></section>");
              return;
            }
            head += ' <span class="points">+' + esc(num(contribution, 1)) + " "
              + esc(t.points) + "</span></h3>"
              + '<div class="bar" aria-hidden="true"><i style="width:'
              + Math.max(0, Math.min(100, contribution)) + '%"></i></div>'
              + '<p class="level">' + esc(fill(t.level, {value: num(level, 2)})) + "</p>";
            parts.push('<section class="factor">' + head + rows(details(f, p))
              + '<div class="evidence" data-factor="' + esc(f) + '"></div></section>');
          });
          parts.push('<p><a href="' + esc(itemPage("community_risk", id)) + '">'
            + esc(t.record) + "</a></p>");
          el.innerHTML = parts.join("");
          refresh();
          return evidence(el, p, id);
        });
      }

      function evidence(el, p, id) {
        var jobs = [];
        cfg.factors.forEach(function (f) {
          var box = el.querySelector('div.evidence[data-factor="' + f + '"]');
          var ids = p[f + "_evidence"] || [];
          // Evidence the public may not see is left out of the list and counted here.
          var withheld = p[f + "_evidence_withheld"] || 0;
          if (!box || (!ids.length && !withheld && !evidenceCount(f, p, 0))) { return; }
          var total = evidenceCount(f, p, ids.length + withheld);
          var first = ids.slice(0, cfg.evidenceShown);
          box.innerHTML = "<h4>" + esc(t.evidence) + "</h4><p>" + esc(t.loading) + "</p>";
          jobs.push(Promise.all(first.map(function (eid) {
            var source = sourceOf(eid);
            if (!source || !source.layer) { return Promise.resolve({id: eid, source: source}); }
            return getJSON(itemUrl(source.layer, eid)).then(function (feature) {
              return {id: eid, source: source, props: feature.properties};
            }, function (error) {
              return {id: eid, source: source, hidden: error.status === 404};
            });
          })).then(function (found) {
            var items = [];
            var hidden = withheld;
            var sources = [];
            found.forEach(function (e) {
              if (e.hidden) { hidden += 1; return; }
              if (e.source && sources.indexOf(e.source.key) < 0) { sources.push(e.source.key); }
              items.push("<li>" + evidenceItem(e) + "</li>");
            });
            var notes = [];
            var later = ids.length - first.length;
            if (later > 0) {
              notes.push('<a href="' + esc(itemPage("community_risk", id)) + '">'
                + esc(plural(t.inRecord, later)) + "</a>");
            }
            if (total > ids.length + withheld) {
              notes.push(esc(plural(t.notListed, total - ids.length - withheld)));
            }
            if (hidden) { notes.push(esc(plural(t.notPublic, hidden))); }
            box.innerHTML = "<h4>" + esc(t.evidence) + "</h4>"
              + (items.length ? "<ul>" + items.join("") + "</ul>" : "")
              + (notes.length ? '<p class="more">' + notes.join(" · ") + "</p>" : "")
              + sources.map(function (k) {
                return sourceLine(Object.assign({key: k}, cfg.sources[k]));
              }).join("");
          }));
        });
        return Promise.all(jobs);
      }

      group.on("add", load);
      map.on("moveend", load);
      load();
      return {points: points, hexes: hexes};
    }

    function evidenceItem(e) {
      var p = e.props || {};
      var layer = e.source && e.source.layer;
      var kind = e.source ? e.source.kind : null;
      var name;
      var when = "";
      if (kind === "incidents") {
        name = t.types[p.type] || p.type || e.id;
        when = date(p.date);
        if (p.fatalities !== null && p.fatalities !== undefined) {
          when += " · " + fill(t.deathsCount, {n: count(p.fatalities)});
        }
      } else {
        name = p.name || e.id;
        if (p.granted) {
          when = fill(t.granted, {date: date(p.granted)});
        } else if (p.operation_start) {
          when = fill(t.operating, {date: date(p.operation_start)});
        } else if (p.construction_start) {
          when = fill(t.built, {date: date(p.construction_start)});
        }
      }
      var link = layer
        ? '<a href="' + esc(itemPage(layer, e.id)) + '">' + esc(name) + "</a>"
        : esc(name);
      return link + (when ? ' <span class="when">' + esc(when) + "</span>" : "");
    }

    // ---- mine sites and tailings dams: the features of the view --------------------------
    function ViewLayer(id, group, properties, draw, statusId, noun) {
      var seq = 0;
      var drawn = L.featureGroup().addTo(group);
      var keyed = Keyed(drawn);
      function load() {
        if (!shown(id)) { return; }
        var mine = ++seq;
        track(getJSON(api + id + "/items?limit=" + cfg.viewLimit + "&properties="
          + properties + "&bbox=" + bboxOf(map.getBounds())).then(function (fc) {
          if (mine !== seq) { return; }
          keyed.update(fc.features, function (f) { return f.id; }, function (added) {
            return added.map(function (f) {
              var parts = L.featureGroup().addTo(drawn);
              draw(f, parts);
              return [f.id, [parts]];
            });
          });
          data[id === "concessions" ? "concessions" : "dams"] = fc.numberReturned;
          setStatus(statusId, fc.numberMatched > fc.numberReturned
            ? fill(t.partial, {shown: count(fc.numberReturned), total: count(fc.numberMatched)})
            : plural(noun, fc.numberMatched));
        })).catch(function () { setStatus(statusId, t.failed); });
      }
      group.on("add", load);
      map.on("moveend", load);
      load();
    }

    function field(key, value) {
      return [t.fields[key] || key, value];
    }

    function drawSite(f, target) {
      var p = f.properties;
      if (f.geometry.type !== "Point") {
        var shape = L.geoJSON(f, {style: {color: "#111", weight: 1.5, fillColor: "#fff",
          fillOpacity: 0.25}}).addTo(target);
        shape.eachLayer(function (l) {
          l.options.riskLayer = "concessions";
          lazyPopup(l, p.name, function (el) { return site(f.id, p.name, el); });
        });
        return;
      }
      var c = f.geometry.coordinates;
      if (p.footprint_radius_m) {
        L.circle([c[1], c[0]], {radius: p.footprint_radius_m, color: "#111", weight: 1,
          dashArray: "4 3", fill: false, interactive: false}).addTo(target);
      }
      var marker = L.marker([c[1], c[0]], {
        keyboard: false, title: p.name, riskLayer: "concessions",
        icon: L.divIcon({className: "site-icon", iconSize: [16, 16],
          html: '<svg viewBox="0 0 16 16" aria-hidden="true"><path d="M8 1 15 8 8 15 1 8z"/></svg>'})
      }).addTo(target);
      marker.feature = f;
      lazyPopup(marker, p.name, function (el) { return site(f.id, p.name, el); });
    }

    function site(id, name, el) {
      return Promise.all([
        getJSON(itemUrl("concessions", id)),
        getJSON(itemUrl("concession_risk", id)).catch(function () { return null; })
      ]).then(function (found) {
        var p = found[0].properties;
        var r = found[1] ? found[1].properties : null;
        var values = {
          holder: esc(p.holder),
          status: esc(p.status),
          footprint: p.footprint === "site" && p.footprint_radius_m
            ? esc(fill(t.siteFootprint, {km: num(p.footprint_radius_m / 1000, 0)}))
            : esc(t.polygon),
          // Counts are null where no source of their kind looked: "no data", never 0.
          incidents_nearby: !r ? null : (r.incidents_1y === null ? esc(t.noCoverage)
            : (r.reference_date ? esc(fill(t.incidentsNearby, {
              y1: count(r.incidents_1y), y3: count(r.incidents_3y),
              y5: count(r.incidents_5y), km: count(cfg.concessionKm),
              date: date(r.reference_date)
            })) : null)),
          communities_nearby: !r ? null : (r.communities_within === null ? esc(t.noCoverage)
            : esc(fill(t.communitiesNearby, {
              n: count(r.communities_within), km: count(cfg.concessionKm),
              people: plural(t.people, r.population_within)
            }))),
          dams_inside: !r ? null
            : (r.dams_inside === null ? esc(t.noCoverage) : esc(count(r.dams_inside)))
        };
        var list = cfg.popup.concessions.map(function (k) {
          return field(k, values[k]);
        });
        var links = '<p><a href="' + esc(itemPage("concessions", id)) + '">' + esc(t.record)
          + "</a></p>";
        el.innerHTML = "<h2>" + esc(name) + '</h2><p class="where">'
          + esc(cfg.countries[p.country] || p.country) + "</p>" + rows(list)
          + sourceLine(sourceOf(id)) + links;
      });
    }

    var runout = L.featureGroup().addTo(map);
    function drawDam(f, target) {
      var p = f.properties;
      var c = f.geometry.coordinates;
      var colour = cfg.damColours[p.indicative_consequence_class] || "#ffffff";
      var marker = L.marker([c[1], c[0]], {
        keyboard: false, title: p.name, riskLayer: "tailings_consequence",
        icon: L.divIcon({className: p.failed ? "dam-icon failed" : "dam-icon",
          iconSize: [16, 15],
          html: '<svg viewBox="0 0 16 15" aria-hidden="true"><path d="M8 1 15 14 1 14z" '
            + 'style="fill:' + colour + '"/></svg>'})
      }).addTo(target);
      marker.feature = f;
      lazyPopup(marker, p.name, function (el) { return dam(f.id, p.name, el); });
      marker.on("popupopen", function () {
        runout.clearLayers();
        // The median run-out, and how far a flow is followed over land (the p90 run-out, no
        // further than the overland limit): the chance of a flow falls between the two.
        [[p.runout_reach_km, "6 4"], [p.runout_p50_km, null]].forEach(function (r) {
          if (r[0]) {
            L.circle([c[1], c[0]], {radius: r[0] * 1000, color: "#7a0177", weight: 2,
              dashArray: r[1], fillColor: colour, fillOpacity: r[1] ? 0.08 : 0.12,
              interactive: false}).addTo(runout);
          }
        });
      });
      marker.on("popupclose", function () { runout.clearLayers(); });
    }

    function dam(id, name, el) {
      return getJSON(itemUrl("tailings_consequence", id)).then(function (f) {
        var p = f.properties;
        var cls = p.indicative_consequence_class;
        var values = {
          indicative_consequence_class: cls ? '<svg class="sym" viewBox="0 0 16 15" aria-hidden="true">'
            + '<path d="M8 1 15 14 1 14z" fill="' + (cfg.damColours[cls] || "#fff")
            + '"/></svg>' + esc(t.damClasses[cls] || cls)
            + ' <small>(' + esc(t.indicative) + ")</small>" : null,
          reported_consequence: esc(p.reported_consequence),
          status: p.failed ? esc(fill(t.failedOn, {date: date(p.failure_date)}))
            : esc(t.damStatus[p.status] || p.status),
          construction_method: esc(t.construction[p.construction_method]
            || p.construction_method),
          height_m: p.height_m === null ? null : esc(fill(t.m, {value: num(p.height_m, 0)})),
          volume_m3: p.volume_m3 === null ? null
            : esc(fill(t.m3, {value: count(p.volume_m3)})),
          runout: p.runout_p50_km === null ? null : esc(fill(t.runoutBand, {
            median: km(p.runout_p50_km), low: km(p.runout_p10_km), high: km(p.runout_p90_km)
          })) + (p.height_estimated || p.volume_estimated
            ? " <small>(" + esc(t.estimatedDam) + ")</small>" : ""),
          communities_in_runout: p.communities_in_runout === null ? esc(t.noCoverage)
            : esc(count(p.communities_in_runout)),
          people_in_runout: p.people_in_runout === null ? esc(t.noCoverage)
            : esc(fill(t.peopleBand, {
              n: count(p.people_in_runout), low: count(p.people_in_runout_p10),
              high: count(p.people_in_runout_p90)
            })) + " <small>(" + esc(t.screening) + ")</small>",
          communities_downstream: p.communities_downstream === null ? esc(t.noCoverage)
            : esc(count(p.communities_downstream)),
          river_name: esc(p.river_name)
        };
        var list = cfg.popup.tailings_consequence.map(function (k) {
          return field(k, values[k]);
        });
        var source = sourceOf(id);
        var links = '<p><a href="' + esc(itemPage("tailings_consequence", id)) + '">'
          + esc(t.record) + "</a>"
          + (source && source.layer ? ' · <a href="' + esc(itemPage(source.layer, id)) + '">'
            + esc(source.publisher) + "</a>" : "") + "</p>";
        el.innerHTML = "<h2>" + esc(name) + '</h2><p class="where">'
          + esc(cfg.countries[p.country] || p.country) + "</p>" + rows(list)
          + sourceLine(source) + links;
      });
    }

    // ---- incidents: every one of the view, grouped; years filtered in the browser ---------
    function Incidents(group) {
      var markers = L.featureGroup().addTo(group);
      var keyed = Keyed(markers);
      var from = document.getElementById("incidents-from");
      var to = document.getElementById("incidents-to");
      var span = document.getElementById("incidents-span");
      var box = document.getElementById("time-filter");
      var Filter = L.Control.extend({
        options: {position: "bottomright"},
        onAdd: function () {
          L.DomEvent.disableClickPropagation(box);
          L.DomEvent.disableScrollPropagation(box);
          return box;
        }
      });
      new Filter().addTo(map);
      if (small) { document.getElementById("time-details").removeAttribute("open"); }
      var loaded = null;
      var points = {x: null, y: null, year: null, id: [], date: []};
      var chosen = new Int32Array(0);
      var index = null;
      var seq = 0;
      var timer = null;

      function maxZoom() {
        var z = map.getMaxZoom();
        return isFinite(z) ? Math.min(z, 18) : 18;
      }

      function years() {
        var a = Number(from.value);
        var b = Number(to.value);
        return a <= b ? [a, b] : [b, a];
      }

      function rebuild() {
        var range = years();
        var keep = [];
        var features = [];
        for (var i = 0; i < points.id.length; i++) {
          if (points.year[i] >= range[0] && points.year[i] <= range[1]) {
            keep.push(i);
            features.push({type: "Feature", properties: {i: i},
              geometry: {type: "Point", coordinates: [points.x[i], points.y[i]]}});
          }
        }
        chosen = Int32Array.from(keep);
        keyed.clear();
        index = new window.Supercluster({radius: 90, maxZoom: maxZoom(), minPoints: 2})
          .load(features);
        draw();
      }

      function incident(id, el) {
        return getJSON(itemUrl("incidents", id)).then(function (f) {
          var p = f.properties;
          var values = {
            type: esc(t.types[p.type] || p.type),
            fatalities: p.fatalities === null ? null : esc(count(p.fatalities)),
            perpetrator: esc(p.perpetrator),
            location_precision: esc(t.precisions[p.location_precision]
              || p.location_precision)
          };
          var list = cfg.popup.incidents.map(function (k) {
            return field(k, values[k]);
          });
          el.innerHTML = "<h2>" + esc(date(p.date)) + "</h2>" + rows(list)
            + sourceLine(sourceOf(id)) + '<p><a href="' + esc(itemPage("incidents", id))
            + '">' + esc(t.record) + "</a></p>";
        });
      }

      function leavesPopup(cluster, n) {
        var leaves = index.getLeaves(cluster.properties.cluster_id, 10);
        var list = leaves.map(function (leaf) {
          var i = leaf.properties.i;
          return '<li><a href="' + esc(itemPage("incidents", points.id[i])) + '">'
            + esc(date(points.date[i])) + "</a></li>";
        }).join("");
        return '<div class="risk-popup"><h2>' + esc(plural(t.cluster, n)) + "</h2><ul>" + list
          + "</ul>" + (n > leaves.length
            ? "<p>" + esc(plural(t.andMore, n - leaves.length)) + "</p>" : "") + "</div>";
      }

      function draw() {
        if (!index) { return; }
        var b = map.getBounds();
        var z = Math.round(map.getZoom());
        var items = index.getClusters([Math.max(b.getWest(), -180), Math.max(b.getSouth(), -90),
          Math.min(b.getEast(), 180), Math.min(b.getNorth(), 90)], z);
        keyed.update(items, function (item) {
          return item.properties.cluster ? "c" + item.properties.cluster_id
            : "p" + item.properties.i;
        }, function (added) {
          return added.map(function (item) {
            var c = item.geometry.coordinates;
            var ll = [c[1], c[0]];
            if (item.properties.cluster) {
              var n = item.properties.point_count;
              var size = n < 10 ? 24 : (n < 100 ? 30 : (n < 1000 ? 36 : 42));
              var marker = L.marker(ll, {
                keyboard: false, title: plural(t.cluster, n), riskLayer: "incidents",
                icon: L.divIcon({className: "incident-cluster", iconSize: [size, size],
                  html: "<span>" + esc(compactFormat.format(n)) + "</span>"})
              }).addTo(markers);
              marker.on("click", function () {
                var next = index.getClusterExpansionZoom(item.properties.cluster_id);
                if (next <= maxZoom()) {
                  map.setView(ll, next);
                } else {  // all at one place: list them
                  marker.bindPopup(leavesPopup(item, n), popupOptions()).openPopup();
                }
              });
              return ["c" + item.properties.cluster_id, [marker]];
            }
            var i = item.properties.i;
            var dot = L.circleMarker(ll, {radius: 5, weight: 1.5, color: "#fff",
              fillColor: cfg.incidentColour, fillOpacity: 1, riskLayer: "incidents"})
              .addTo(markers);
            dot.feature = {type: "Feature", id: points.id[i], properties: {date: points.date[i]}};
            lazyPopup(dot, date(points.date[i]), function (el) {
              return incident(points.id[i], el);
            });
            return ["p" + i, [dot]];
          });
        });
        var inView = 0;
        var west = b.getWest();
        var east = b.getEast();
        var south = b.getSouth();
        var north = b.getNorth();
        for (var k = 0; k < chosen.length; k++) {
          var j = chosen[k];
          if (points.x[j] >= west && points.x[j] <= east && points.y[j] >= south
              && points.y[j] <= north) { inView += 1; }
        }
        var range = years();
        data.incidents = inView;
        data.incidentMarkers = items.length;
        span.textContent = range[0] + "–" + range[1];
        var byArea = areasInView();
        data.incidentAreas = byArea;
        setStatus("incidents-status", plural(t.incidentCount, inView)
          + (byArea ? "; " + plural(t.areaCount, byArea) : ""));
      }

      function load() {
        if (!shown("incidents")) { return; }
        var view = map.getBounds();
        if (loaded && loaded.contains(view)) { draw(); return; }
        var want = view.pad(0.5);
        var mine = ++seq;
        var url = api + "incidents/items?limit=10000&properties=date"
          + (cfg.generalised.incidents ? ",generalised,count" : "") + "&bbox=" + bboxOf(want);
        // Every page of the view at once after the first (which says how many there are).
        track(getJSON(url).then(function (first) {
          var pages = [Promise.resolve(first)];
          for (var offset = 10000; offset < first.numberMatched; offset += 10000) {
            pages.push(getJSON(url + "&offset=" + offset));
          }
          return Promise.all(pages);
        }).then(function (pages) {
          if (mine !== seq) { return; }
          var cells = [];
          pages.forEach(function (page) {
            page.features = page.features.filter(function (f) {
              if (f.geometry && f.geometry.type === "Point") { return true; }
              cells.push(f);
              return false;
            });
          });
          var n = pages.reduce(function (s, p) { return s + p.features.length; }, 0);
          points = {x: new Float64Array(n), y: new Float64Array(n), year: new Int16Array(n),
                    id: new Array(n), date: new Array(n)};
          drawAreas(cells);
          var i = 0;
          pages.forEach(function (page) {
            page.features.forEach(function (f) {
              points.x[i] = f.geometry.coordinates[0];
              points.y[i] = f.geometry.coordinates[1];
              points.date[i] = f.properties.date;
              points.year[i] = f.properties.date ? Number(f.properties.date.slice(0, 4)) : 0;
              points.id[i] = f.id;
              i += 1;
            });
          });
          loaded = want;
          rebuild();
        })).catch(function () { setStatus("incidents-status", t.failed); });
      }

      // Reports the public may know only by area (restricted): their cell and a count, with no
      // date, so the year filter cannot apply to them; the count says so.
      var areaLayer = L.featureGroup().addTo(group);
      var areas = [];
      function drawAreas(cells) {
        areaLayer.clearLayers();
        areas = cells.map(function (f) {
          return {count: f.properties.count || 0, bounds: L.geoJSON(f).getBounds()};
        });
        cells.forEach(function (f) {
          var n = f.properties.count || 0;
          L.geoJSON(f, {style: {color: "#111", weight: 1.5, dashArray: "5 4", fillColor: "#111",
            fillOpacity: 0.12}}).eachLayer(function (l) {
            l.options.riskLayer = "incidents";
            l.bindPopup('<div class="risk-popup"><h2>' + esc(plural(t.areaIncidents, n))
              + '</h2><p class="note">' + esc(t.areaNote) + "</p></div>", popupOptions());
            l.addTo(areaLayer);
          });
        });
      }
      function areasInView() {
        var b = map.getBounds();
        return areas.reduce(function (sum, a) {
          return b.intersects(a.bounds) ? sum + a.count : sum;
        }, 0);
      }

      function changed() {
        var range = years();
        document.getElementById("incidents-from-value").textContent = from.value;
        document.getElementById("incidents-to-value").textContent = to.value;
        span.textContent = range[0] + "–" + range[1];
        update();
        clearTimeout(timer);
        timer = setTimeout(function () { if (points.id.length || loaded) { rebuild(); } }, 60);
      }
      from.addEventListener("input", changed);
      to.addEventListener("input", changed);
      group.on("add", load);
      map.on("moveend", load);
      load();
      return {years: years};
    }

    // ---- the view in the URL, and the embed code ------------------------------------------
    var incidents = null;
    function query() {
      var c = map.getCenter();
      var q = new URLSearchParams(location.search);
      q.set("lat", c.lat.toFixed(4));
      q.set("lon", c.lng.toFixed(4));
      q.set("z", map.getZoom());
      q.set("layers", cfg.layers.filter(shown).join(","));
      q.set("lang", lang);
      if (incidents) {
        var range = incidents.years();
        q.set("from", range[0]);
        q.set("to", range[1]);
      }
      return q.toString();
    }
    function snippet(q) {
      var src = cfg.embedUrl + "?" + q;
      return '<div style="position:relative;width:100%;padding-bottom:66%;height:0">'
        + '<iframe src="' + esc(src) + '" title="' + esc(cfg.title) + '"'
        + ' style="position:absolute;top:0;left:0;width:100%;height:100%;border:0"'
        + ' loading="lazy" allowfullscreen></iframe></div>'
        + '<p style="font:12px sans-serif">' + cfg.credit + "</p>";
    }
    function update() {
      var q = query();
      history.replaceState(null, "", location.pathname + "?" + q);
      var code = document.getElementById("embed-code");
      if (code) { code.value = snippet(q); }
    }

    if (!cfg.embed) {
      var Embed = L.Control.extend({
        options: {position: "topleft"},
        onAdd: function () {
          var div = L.DomUtil.create("div", "leaflet-bar embed-control");
          var button = L.DomUtil.create("button", "", div);
          button.type = "button";
          button.textContent = t.embed;
          button.setAttribute("aria-expanded", "false");
          button.setAttribute("aria-controls", "embed-panel");
          var panel = L.DomUtil.create("div", "embed-panel", div);
          panel.id = "embed-panel";
          panel.hidden = true;
          var label = L.DomUtil.create("label", "", panel);
          label.textContent = t.copy;
          label.htmlFor = "embed-code";
          var code = L.DomUtil.create("textarea", "", panel);
          code.id = "embed-code";
          code.rows = 5;
          code.readOnly = true;
          L.DomEvent.disableClickPropagation(div);
          L.DomEvent.disableScrollPropagation(div);
          button.addEventListener("click", function () {
            panel.hidden = !panel.hidden;
            button.setAttribute("aria-expanded", String(!panel.hidden));
            if (!panel.hidden) { code.value = snippet(query()); code.select(); }
          });
          return div;
        }
      });
      new Embed().addTo(map);
    }

    // ---- start -----------------------------------------------------------------------------
    if (layers.community_risk) { Communities(layers.community_risk); }
    if (layers.concessions) {
      ViewLayer("concessions", layers.concessions, "name,footprint,footprint_radius_m",
        drawSite, "concession-status", t.sites);
    }
    if (layers.tailings_consequence) {
      ViewLayer("tailings_consequence", layers.tailings_consequence,
        "name,indicative_consequence_class,runout_p50_km,runout_reach_km,failed", drawDam,
        "dam-status", t.dams);
    }
    if (layers.incidents) { incidents = Incidents(layers.incidents); }
    map.on("overlayadd overlayremove", function () { syncLegend(); credit(); });
    map.on("moveend overlayadd overlayremove", update);
    syncLegend();
    credit();
    update();
    if (!pending) { pending = 1; done(); }
    if (layers.risk_surface) {
      layers.risk_surface.on("load", function () {
        data.tilesAt = Math.round(performance.now());
      });
    }
  }

  /** Features drawn now per layer (what is on the map, not what was fetched). */
  function drawn(map) {
    var counts = {};
    map.eachLayer(function (layer) {
      var id = layer.options && layer.options.riskLayer;
      if (id) { counts[id] = (counts[id] || 0) + 1; }
    });
    return counts;
  }

  window.RiskMap = {start: start, drawn: drawn};
})();
