/*
 * Popups: their content is made when one opens (and fetched then), never for every point;
 * always as nodes. Tables of fields, a source's credit line.
 */

import {h, put} from "./dom.js";
import {fill} from "./text.js";

/** Around its content a popup has 44 px of margin and 2 of border (Leaflet's stylesheet),
 * and it keeps 10 px from each side of the map. */
const POPUP_FRAME = 46 + 2 * 10;

export function popupOptions(map) {
  const room = map.getSize().x - POPUP_FRAME;
  return {maxWidth: Math.min(340, room), minWidth: Math.min(220, room),
    maxHeight: Math.max(160, Math.min(460, map.getSize().y - 90)),
    autoPanPaddingTopLeft: [10, 50], autoPanPaddingBottomRight: [10, 10]};
}

/** Binds a popup whose content ``make(el, refresh)`` fills (a promise) when it opens. */
export function lazyPopup(ctx, marker, title, make) {
  marker.bindPopup("", popupOptions(ctx.map));
  marker.on("popupopen", (e) => {
    const popup = e.popup;
    const el = h("div", {class: "risk-popup"}, h("h2", {}, title), h("p", {}, ctx.t.loading));
    popup.setContent(el);
    const refresh = () => { if (popup.isOpen()) { popup.update(); } };
    make(el, refresh).then(refresh, () => {
      put(el, h("h2", {}, title), h("p", {}, ctx.t.failed));
      refresh();
    });
  });
}

/** A table of label → value (text or node) rows; empty values are left out. */
export function rows(pairs) {
  const kept = pairs.filter((p) => p[1] !== null && p[1] !== undefined && p[1] !== "");
  if (!kept.length) { return null; }
  return h("table", {}, kept.map((p) => h("tr", {}, h("th", {scope: "row"}, p[0]),
    h("td", {}, p[1]))));
}

/** The source of a feature by its id ("source:id"), with its key. */
export function sourceOf(ctx, id) {
  const key = String(id).split(":")[0];
  return ctx.cfg.sources[key] ? Object.assign({key: key}, ctx.cfg.sources[key]) : null;
}

/** "Source: title, publisher (licence)", the title linked to the publisher's page. */
export function sourceLine(ctx, source) {
  if (!source) { return null; }
  const name = source.url ? h("a", {href: source.url, rel: "noopener"}, source.title)
    : source.title;
  const [before, after] = ctx.t.sourceLine.split("{source}");
  return h("p", {class: "source"}, before, name, fill(after || "", {}), ", ", source.publisher,
    source.licence ? " (" + source.licence + ")" : "");
}

/** A link to a feature's full record. */
export function recordLink(ctx, layer, id, ...more) {
  const page = ctx.net.itemPage(layer, id);  // none in an offline bundle
  return h("p", {}, page ? h("a", {href: page}, ctx.t.record) : null, more);
}
