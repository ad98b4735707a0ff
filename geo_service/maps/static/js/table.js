/*
 * The communities in view as a table: the map's accessible alternative (score, class,
 * confidence, factors with data), in a dialog; a name opens that community on the map.
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
  if (!opener || !ctx.communities) { return; }
  const title = h("h2", {id: "community-table-title"}, t.tableTitle);
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
    net.getJSON(cfg.api + "community_risk/items?limit=" + cfg.viewLimit
      + "&properties=name,country,score,risk_class,confidence,factors_available&bbox="
      + bboxOf(map.getBounds())).then((fc) => {
      const points = fc.features.filter((f) => f.geometry && f.geometry.type === "Point")
        .sort((a, b) => (b.properties.score ?? -1) - (a.properties.score ?? -1));
      const shown = points.slice(0, ROWS);
      put(body,
        fc.numberMatched > cfg.viewLimit ? h("p", {}, fill(t.partial, {
          shown: words.count(fc.numberReturned), total: words.count(fc.numberMatched)
        })) : null,
        h("table", {},
          h("caption", {}, words.plural(t.communities, points.length)
            + (points.length > ROWS ? " — " + fill(t.tableFirst, {n: words.count(ROWS)}) : "")),
          h("thead", {}, h("tr", {}, [t.colName, t.colCountry, t.colScore, t.colClass,
            t.colConfidence, t.colFactors].map((c) => h("th", {scope: "col"}, c)))),
          h("tbody", {}, shown.map(row))));
    }, () => put(body, h("p", {}, t.failed)));
  });
}
