/*
 * What is in view as tables, the map's accessible alternative, in a dialog: the official units
 * (people, people near mines and dams, highest score; sortable by any column) and the
 * communities (score, class, confidence, factors with data). A name opens it on the map.
 */

import {bboxOf} from "./net.js";
import {h, put} from "./dom.js";
import {fill} from "./text.js";

/** Most rows a table shows (the highest scores first); the rest are counted. */
const ROWS = 300;

export function addTable(ctx) {
  const {map, t, cfg, net, words, styles} = ctx;
  const cs = styles.communities;
  const opener = document.getElementById("table-open");
  const units = cfg.layers.includes(UNITS) ? styles.of(UNITS) : null;
  if (!opener || (!ctx.communities && !units)) { return; }
  const title = h("h2", {id: "community-table-title"},
    ctx.communities ? t.tableTitle : t.unitsTitle);
  const body = h("div", {class: "table-body"});
  const close = h("button", {type: "button", class: "table-close"}, t.closePopup);
  const dialog = h("dialog", {id: "community-table", "aria-labelledby": "community-table-title"},
    h("div", {class: "table-head"}, title, close), body);
  document.body.append(dialog);
  close.addEventListener("click", () => dialog.close());

  function row(f) {
    const p = f.properties;
    const cls = p.risk_class in cs.colours ? p.risk_class : "no data";
    const name = h("button", {type: "button", class: "linkish"}, p.name);
    name.addEventListener("click", () => {
      dialog.close();
      const c = f.geometry.coordinates;
      ctx.communities.open(f.id);
      map.setView([c[1], c[0]], Math.max(map.getZoom(), 11));
    });
    const factors = (p.factors_available || []).map((k) => cs.fields[k] || k).join(", ");
    return h("tr", {},
      h("th", {scope: "row"}, name),
      h("td", {}, cfg.countries[p.country] || p.country),
      h("td", {class: "num"}, p.score === null ? "—" : words.score(p.score)),
      h("td", {}, styles.label(cs, cls)),
      h("td", {}, p.confidence ? (t.confidenceWord[p.confidence] || p.confidence) : "—"),
      h("td", {}, factors || "—"));
  }

  opener.addEventListener("click", () => {
    put(body, h("p", {}, t.loading));
    dialog.showModal();
    const parts = [units ? unitTable(ctx, units, dialog) : Promise.resolve(null),
      ctx.communities ? communityTable() : Promise.resolve(null)];
    Promise.all(parts).then((found) => put(body, ...found), () => put(body, h("p", {}, t.failed)));
  });

  function communityTable() {
    return net.getJSON(cfg.api + "community_risk/items?limit=" + cfg.viewLimit
      + "&properties=name,country,score,risk_class,confidence,factors_available&bbox="
      + bboxOf(map.getBounds())).then((fc) => {
      const points = fc.features.filter((f) => f.geometry && f.geometry.type === "Point")
        .sort((a, b) => (b.properties.score ?? -1) - (a.properties.score ?? -1));
      const shown = points.slice(0, ROWS);
      return h("section", {},
        units ? h("h3", {}, t.tableTitle) : null,
        fc.numberMatched > cfg.viewLimit ? h("p", {}, fill(t.partial, {
          shown: words.count(fc.numberReturned), total: words.count(fc.numberMatched)
        })) : null,
        h("table", {},
          h("caption", {}, words.plural(t.communities, points.length)
            + (points.length > ROWS ? " — " + fill(t.tableFirst, {n: words.count(ROWS)}) : "")),
          h("thead", {}, h("tr", {}, [t.colName, t.colCountry, t.colScore, t.colClass,
            t.colConfidence, t.colFactors].map((c) => h("th", {scope: "col"}, c)))),
          h("tbody", {}, shown.map(row))));
    });
  }
}

const UNITS = "risk_units";
/** The columns of the units table: fields of the layer, labelled by its definition. */
const UNIT_COLUMNS = ["people", "people_mine_5km", "people_mine_10km", "people_mine_20km",
  "people_runout", "communities", "score_max", "score_weighted"];

/** The units in view, sortable by any column (a header's button; aria-sort says how). */
function unitTable(ctx, style, dialog) {
  const {map, t, cfg, net, words, styles} = ctx;
  const url = cfg.api + UNITS + "/items?limit=" + cfg.viewLimit + "&properties=name,code,"
    + "risk_class," + UNIT_COLUMNS.join(",") + (cfg.where[UNITS] || "") + "&bbox="
    + bboxOf(map.getBounds());
  return net.getJSON(url).then((fc) => {
    const features = fc.features.slice();
    const tbody = h("tbody", {});
    const heads = [];
    let key = "score_max";
    let down = true;
    function value(f, k) {
      const v = f.properties[k];
      return v === null || v === undefined ? null : v;
    }
    function cell(f, k) {
      const v = value(f, k);
      if (v === null) { return h("td", {class: "num"}, "—"); }
      return h("td", {class: "num"}, k.startsWith("score") ? words.score(v) : words.count(v));
    }
    function row(f) {
      const p = f.properties;
      const name = h("button", {type: "button", class: "linkish"}, p.name);
      name.addEventListener("click", () => {
        dialog.close();
        const layer = L.geoJSON(f);
        map.fitBounds(layer.getBounds());
      });
      return h("tr", {}, h("th", {scope: "row"}, name), h("td", {}, p.code),
        h("td", {}, styles.label(style, p.risk_class)), ...UNIT_COLUMNS.map((k) => cell(f, k)));
    }
    function sort() {
      const sign = down ? -1 : 1;
      features.sort((a, b) => {
        const x = value(a, key);
        const y = value(b, key);
        if (x === y) { return 0; }
        if (x === null) { return 1; }
        if (y === null) { return -1; }
        return (typeof x === "string" ? x.localeCompare(y, cfg.lang) : x - y) * sign;
      });
      put(tbody, features.map(row));
      heads.forEach(([k, th]) => th.setAttribute("aria-sort",
        k === key ? (down ? "descending" : "ascending") : "none"));
    }
    function head(k, label) {
      const button = h("button", {type: "button", class: "linkish"}, label);
      const th = h("th", {scope: "col"}, button);
      button.addEventListener("click", () => {
        down = key === k ? !down : k !== "name" && k !== "code";
        key = k;
        sort();
      });
      heads.push([k, th]);
      return th;
    }
    const labels = style.fields;
    const table = h("table", {class: "sortable"},
      h("caption", {}, style.name + " — " + words.count(features.length)),
      h("thead", {}, h("tr", {}, head("name", labels.unit || t.colName), head("code", labels.code || "code"),
        h("th", {scope: "col"}, t.colClass), ...UNIT_COLUMNS.map((k) => head(k, labels[k] || k)))),
      tbody);
    sort();
    return h("section", {}, ctx.communities ? h("h3", {}, t.unitsTitle) : null,
      fc.numberMatched > cfg.viewLimit ? h("p", {}, fill(t.partial, {
        shown: words.count(fc.numberReturned), total: words.count(fc.numberMatched)
      })) : null, table);
  });
}
