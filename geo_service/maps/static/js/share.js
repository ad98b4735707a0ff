/*
 * The view in the URL (centre, zoom, layers, years, language), so a shared link reopens it;
 * the Share panel (the link, the phone's share sheet, the embed code, the view as a
 * picture); and the page's oEmbed discovery link, which follows the view.
 */

import {h} from "./dom.js";
import {bboxOf} from "./net.js";

function attr(value) {
  return String(value).replace(/[&<>"']/g, (c) => "&#" + c.charCodeAt(0) + ";");
}

export function Sharing(ctx) {
  const {map, cfg, t} = ctx;

  function query() {
    const c = map.getCenter();
    const q = new URLSearchParams(location.search);
    q.set("lat", c.lat.toFixed(4));
    q.set("lon", c.lng.toFixed(4));
    q.set("z", map.getZoom());
    q.set("layers", cfg.layers.filter(ctx.shown).join(","));
    q.set("lang", cfg.lang);
    q.delete("bbox");
    if (ctx.incidents) {
      const range = ctx.incidents.years();
      q.set("from", range[0]);
      q.set("to", range[1]);
    }
    return q.toString();
  }

  // The view as a box, so a frame or picture of any size fits it (not this screen's centre
  // and zoom).
  function boxed(q) {
    const box = new URLSearchParams(q);
    ["lat", "lon", "z"].forEach((k) => box.delete(k));
    box.set("bbox", bboxOf(map.getBounds()));
    return box.toString();
  }

  // The embed code: as wide as its column, in proportion, never below 240 px, then the
  // credit and the date of the evidence.
  function snippet(q) {
    const src = cfg.embedUrl + "?" + boxed(q);
    return '<div style="position:relative;width:100%;aspect-ratio:3 / 2;min-height:240px">'
      + '<iframe src="' + attr(src) + '" title="' + attr(cfg.title) + '"'
      + ' style="position:absolute;top:0;left:0;width:100%;height:100%;border:0"'
      + ' loading="lazy" allowfullscreen></iframe></div>'
      + '<p style="font:12px sans-serif">' + cfg.credit
      + (cfg.evidenceDate ? " — " + attr(cfg.evidenceDate) : "") + "</p>";
  }

  function update() {
    const q = query();
    history.replaceState(null, "", location.pathname + "?" + q);
    const code = document.getElementById("embed-code");
    if (code) { code.value = snippet(q); }
    // The language switch keeps the view.
    document.querySelectorAll("nav.languages a[data-lang]").forEach((a) => {
      const other = new URLSearchParams(q);
      other.set("lang", a.dataset.lang);
      a.href = location.pathname + "?" + other.toString();
    });
    // oEmbed discovery follows the view, so a link pasted into a CMS embeds what was seen.
    const discovery = document.querySelector('link[type="application/json+oembed"]');
    if (discovery) {
      const page = location.origin + location.pathname.replace(/\/embed\//, "/maps/") + "?" + q;
      discovery.href = cfg.oembedUrl + "?" + new URLSearchParams({url: page, format: "json"});
    }
  }

  if (!cfg.embed && !cfg.offline) {  // an offline bundle has no address to share
    const Share = L.Control.extend({
      options: {position: "topleft"},
      onAdd: () => {
        const button = h("button", {type: "button", "aria-expanded": "false",
          "aria-controls": "embed-panel"}, t.share);
        const link = h("input", {id: "share-link", readonly: true});
        const code = h("textarea", {id: "embed-code", rows: 5, readonly: true});
        const picture = h("a", {class: "share-picture", target: "_blank", rel: "noopener"},
          t.picture);
        const native = navigator.share ? h("button", {type: "button", class: "share-native"},
          t.shareWith) : null;
        if (native) {
          native.addEventListener("click", () => {
            navigator.share({title: cfg.title, url: link.value}).catch(() => null);
          });
        }
        const panel = h("div", {class: "embed-panel", id: "embed-panel"},
          h("label", {for: "share-link"}, t.shareLink), link, native,
          h("label", {for: "embed-code"}, t.copy), code, picture);
        panel.hidden = true;
        const div = h("div", {class: "leaflet-bar embed-control"}, button, panel);
        L.DomEvent.disableClickPropagation(div);
        L.DomEvent.disableScrollPropagation(div);
        button.addEventListener("click", () => {
          panel.hidden = !panel.hidden;
          button.setAttribute("aria-expanded", String(!panel.hidden));
          if (!panel.hidden) {
            const q = query();
            link.value = location.origin + location.pathname + "?" + q;
            code.value = snippet(q);
            picture.href = cfg.pictureUrl + "?" + boxed(q);
            link.select();
          }
        });
        return div;
      }
    });
    new Share().addTo(map);
  }
  return {update};
}
