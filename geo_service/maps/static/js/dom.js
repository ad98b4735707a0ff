/*
 * Elements made as nodes, never from HTML strings: a name with "<script>" in it is text.
 */

const SVG = "http://www.w3.org/2000/svg";

/** An element with attributes and children (text, nodes, arrays; null and false skipped). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) { continue; }
    if (key === "class") {
      el.className = value;
    } else if (key === "href") {
      el.setAttribute("href", safeHref(value));
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

/** ``el`` holding only ``children`` (as ``h`` takes them). */
export function put(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) { continue; }
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** A layer's symbol (an SVG path in a 16 × 16 box) filled with a colour. */
export function symbol(path, fill, size, className) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 16 16");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", className || "sym");
  if (size) {
    svg.setAttribute("width", String(size));
    svg.setAttribute("height", String(size));
  }
  const shape = document.createElementNS(SVG, "path");
  shape.setAttribute("d", path);
  shape.setAttribute("fill", fill);
  svg.append(shape);
  return svg;
}

/** Only web links are followed (a javascript: URL in the data becomes a dead link). */
export function safeHref(url) {
  const text = String(url);
  try {
    const parsed = new URL(text, document.baseURI);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? text : "#";
  } catch {
    return "#";
  }
}
