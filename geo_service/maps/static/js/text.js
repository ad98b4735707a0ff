/*
 * Words and numbers in the page's language: texts with {placeholders}, plurals (one/other
 * forms from the server's catalogs, chosen by Intl.PluralRules), numbers, dates, distances.
 */

export function fill(text, values) {
  return String(text).replace(/\{(\w+)\}/g, (whole, key) =>
    Object.prototype.hasOwnProperty.call(values, key) ? values[key] : whole);
}

export class Words {
  constructor(lang, t) {
    this.t = t;
    this.lang = lang;
    this.formats = {};
    this.rules = new Intl.PluralRules(lang);
    this.dates = new Intl.DateTimeFormat(lang, {
      year: "numeric", month: "short", day: "numeric", timeZone: "UTC"
    });
    this.compact = new Intl.NumberFormat(lang, {notation: "compact"});
    // A score as published: one decimal at most (the class is that of this very number).
    this.scores = new Intl.NumberFormat(lang, {maximumFractionDigits: 1});
  }

  num(value, digits) {
    const key = String(digits);
    if (!this.formats[key]) {
      this.formats[key] = new Intl.NumberFormat(this.lang, {
        minimumFractionDigits: digits, maximumFractionDigits: digits
      });
    }
    return this.formats[key].format(value);
  }

  count(value) { return this.num(value, 0); }

  score(value) { return this.scores.format(value); }

  percent(p) { return fill(this.t.percent, {value: this.num(100 * p, p < 0.1 ? 1 : 0)}); }

  plural(forms, n, values) {
    const text = forms[this.rules.select(n) === "one" ? 0 : 1];
    return fill(text, Object.assign({n: this.count(n)}, values || {}));
  }

  /** A date as the page's language writes it (ISO or dd/mm/yyyy in, text out). */
  date(text) {
    if (!text) { return ""; }
    const iso = /^(\d{4})-(\d{2})-(\d{2})/.exec(text);
    const dmy = /^(\d{2})\/(\d{2})\/(\d{4})$/.exec(text);
    const d = iso ? [iso[1], iso[2], iso[3]] : (dmy ? [dmy[3], dmy[2], dmy[1]] : null);
    if (!d) { return String(text); }
    return this.dates.format(new Date(Date.UTC(+d[0], +d[1] - 1, +d[2])));
  }

  km(value) { return fill(this.t.km, {value: this.num(value, value < 10 ? 1 : 0)}); }
}
