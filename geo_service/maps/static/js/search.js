/*
 * Search: the communities, official units and mine sites of the build by name, whatever the
 * case and accents (the API's q=), from a box in the map's corner; arrows and Enter choose.
 */

import {h, put} from "./dom.js";

export function addSearch(ctx) {
  const {map, t, cfg, net, styles} = ctx;
  const Search = L.Control.extend({
    options: {position: "topright"},
    onAdd: () => {
      const input = h("input", {type: "search", id: "place-search", autocomplete: "off",
        placeholder: t.searchPlaceholder, "aria-controls": "place-results",
        "aria-autocomplete": "list", role: "combobox", "aria-expanded": "false"});
      const list = h("ul", {class: "search-results", id: "place-results", role: "listbox",
        "aria-label": t.searchLabel});
      list.hidden = true;
      const status = h("p", {class: "visually-hidden", "aria-live": "polite"});
      const box = h("div", {class: "leaflet-bar search-control", role: "search"},
        h("label", {class: "visually-hidden", for: "place-search"}, t.searchLabel),
        input, list, status);
      L.DomEvent.disableClickPropagation(box);
      L.DomEvent.disableScrollPropagation(box);
      let timer = null;
      let seq = 0;
      let found = [];
      let active = -1;

      function choose(hit) {
        list.hidden = true;
        input.setAttribute("aria-expanded", "false");
        input.value = hit.name;
        if (hit.f.geometry.type !== "Point") {
          const area = ctx.areas[hit.layer];
          if (area) { map.once("moveend", () => area.open(hit.f.id)); }
          map.fitBounds(L.geoJSON(hit.f).getBounds());
          return;
        }
        const c = hit.f.geometry.coordinates;
        if (hit.layer === "community_risk" && ctx.communities) { ctx.communities.open(hit.f.id); }
        map.setView([c[1], c[0]], Math.max(map.getZoom(), 11));
      }

      function show() {
        put(list, ...found.map((hit, i) => {
          const li = h("li", {id: "place-result-" + i, role: "option",
            class: i === active ? "active" : null, "aria-selected": String(i === active)},
          h("strong", {}, hit.name), " ", h("span", {}, hit.detail));
          li.addEventListener("click", () => choose(hit));
          return li;
        }));
        list.hidden = !found.length;
        input.setAttribute("aria-expanded", String(!list.hidden));
        input.setAttribute("aria-activedescendant", active >= 0 ? "place-result-" + active : "");
        status.textContent = input.value.trim()
          ? ctx.words.plural(t.searchFound, found.length) : "";
      }

      function ask(layer, limit, properties, describe, areas) {
        return net.getJSON(cfg.api + layer + "/items?limit=" + limit + "&properties="
          + properties + (cfg.where[layer] || "") + "&q=" + encodeURIComponent(input.value.trim()))
          .then((fc) => fc.features.filter((f) => f.geometry
            && (areas || f.geometry.type === "Point"))
            .map((f) => ({layer: layer, f: f, name: f.properties.name, detail: describe(f)})));
      }

      function search() {
        const q = input.value.trim();
        const mine = ++seq;
        if (q.length < 2) { found = []; active = -1; show(); return; }
        const asks = [];
        const country = (f) => cfg.countries[f.properties.country] || f.properties.country;
        if (cfg.layers.indexOf("community_risk") >= 0) {
          asks.push(ask("community_risk", 6, "name,country,risk_class", (f) => "— " + country(f) + " · "
            + styles.label(styles.communities, f.properties.risk_class)));
        }
        if (cfg.layers.indexOf("risk_units") >= 0) {
          asks.push(ask("risk_units", 3, "name,code,country", (f) => "— "
            + styles.of("risk_units").name + " · " + f.properties.code, true));
        }
        cfg.layers.filter((id) => styles.of(id) && styles.of(id).draw === "sites").forEach((id) => {
          asks.push(ask(id, 3, "name,country", (f) => "— " + styles.of(id).name + " · " + country(f),
            true));
        });
        Promise.all(asks).then((groups) => {
          if (mine !== seq) { return; }
          found = groups.flat();
          active = found.length ? 0 : -1;
          show();
        }, () => { status.textContent = t.failed; });
      }

      input.addEventListener("input", () => {
        clearTimeout(timer);
        timer = setTimeout(search, 150);
      });
      input.addEventListener("keydown", (e) => {
        if (e.key === "ArrowDown" || e.key === "ArrowUp") {
          if (!found.length) { return; }
          e.preventDefault();
          active = (active + (e.key === "ArrowDown" ? 1 : found.length - 1)) % found.length;
          show();
        } else if (e.key === "Enter" && active >= 0 && found[active]) {
          e.preventDefault();
          choose(found[active]);
        } else if (e.key === "Escape") {
          list.hidden = true;
          input.setAttribute("aria-expanded", "false");
        }
      });
      return box;
    }
  });
  const search = new Search().addTo(map);
  // First in its corner, above the layer list.
  const corner = search.getContainer().parentNode;
  corner.insertBefore(search.getContainer(), corner.firstChild);
}
