/*
 * How each layer is drawn, from its definition (layers/layers.toml, sent by the page):
 * colours and labels of its classes, its symbol, the words of its publishers' values.
 */

import {h, symbol} from "./dom.js";

/** The width, in CSS pixels, of the tap every symbol answers (a fingertip). */
export const TAP = 24;

export class Styles {
  constructor(cfg) {
    this.all = cfg.styles;
    this.thresholds = cfg.thresholds;
    this.noData = cfg.t.noData;
    this.communities = this.all.community_risk
      || {classes: [], colours: {}, labels: {}, fields: {}, values: {}, size: 12};
  }

  of(layer) { return this.all[layer]; }

  colour(style, value) {
    return style.colours[value] || (style.other ? style.other.colour : style.colour);
  }

  label(style, value) {
    return style.labels[value] || (style.other ? this.noData : value);
  }

  /** A value as its publisher wrote it, in the page's language when the definition has it. */
  word(layer, key, value) {
    const style = this.all[layer];
    return (style && style.values[key] && style.values[key][value]) || value;
  }

  /** The same, as a node: untranslated values are marked with their language. */
  published(style, key, value, language) {
    if (value === null || value === undefined || value === "") { return null; }
    const words = style.values[key] && style.values[key][value];
    if (words) { return words; }
    return language ? h("span", {lang: language}, value) : String(value);
  }

  /** The class of a score 0–100 (the server's thresholds; "no data" for none). */
  className(score) {
    if (score === null || score === undefined) { return "no data"; }
    const names = this.communities.classes;
    let k = 0;
    this.thresholds.forEach((step, i) => { if (score >= step) { k = i + 1; } });
    return names[Math.min(k, names.length - 1)];
  }

  /** A marker's icon: the symbol at its size in a box at least TAP wide. */
  icon(style, className, fill) {
    const box = Math.max(style.size, TAP);
    return L.divIcon({className: className + " touch-icon", iconSize: [box, box],
      html: symbol(style.path, fill, style.size, "")});
  }
}
