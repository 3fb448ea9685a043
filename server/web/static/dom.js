// Building DOM without HTML strings (so resident data never becomes markup), shared by every surface.
//
//   import { h, clear } from "/static/dom.js";
//   h("button", { class: "primary", onclick: go, "aria-label": t("x") }, "text", otherNode)
//   clear(node, ...children)     // replace a node's children
//
// Attributes starting with "on" become listeners; `null`/`false` attributes and children are skipped.

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}
