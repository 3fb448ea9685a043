// Chinese by default, English on request: message dictionaries per surface, one language choice per browser.
//
//   import { addMessages, t, setLanguage, language, translate } from "/static/i18n.js";
//   addMessages({ zh: { "signin.title": "登录" }, en: { "signin.title": "Sign in" } });
//   t("code.valid_for", { s: 42 })          // "{s}" placeholders filled in; a missing key shows itself
//   translate(root)                         // fills [data-i18n] text, [data-i18n-label] aria-label,
//                                           //   [data-i18n-placeholder] placeholder under `root`
//   setLanguage("en")                       // remembered (localStorage "yima.lang"), sets <html lang>, and
//                                           //   calls onLanguage listeners so pages redraw
//
// A key missing in English falls back to Chinese, so a half-translated page still reads.

const STORE = "yima.lang";
const LANGUAGES = { zh: "zh-CN", en: "en" };
const messages = { zh: {}, en: {} };
const listeners = new Set();

let current = pick();

function pick() {
  const stored = globalThis.localStorage?.getItem(STORE);
  if (stored && stored in LANGUAGES) return stored;
  return "zh";
}

export function addMessages(dictionaries) {
  for (const [lang, entries] of Object.entries(dictionaries)) {
    messages[lang] = { ...(messages[lang] || {}), ...entries };
  }
}

export function language() {
  return current;
}

export function t(key, vars = {}) {
  const text = messages[current]?.[key] ?? messages.zh[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
}

export function translate(root = document) {
  for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of root.querySelectorAll("[data-i18n-label]")) node.setAttribute("aria-label", t(node.dataset.i18nLabel));
  for (const node of root.querySelectorAll("[data-i18n-placeholder]")) node.placeholder = t(node.dataset.i18nPlaceholder);
  document.documentElement.lang = LANGUAGES[current];
}

export function setLanguage(lang) {
  if (!(lang in LANGUAGES)) throw new Error(`unknown language ${lang}`);
  current = lang;
  globalThis.localStorage?.setItem(STORE, lang);
  translate();
  listeners.forEach((listener) => listener(lang));
}

export function onLanguage(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** Money in fen as yuan with two decimals, e.g. 1250 -> "¥12.50". */
export function yuan(fen) {
  return `¥${(fen / 100).toFixed(2)}`;
}

/** A timestamp in China Standard Time, in the page's language. */
export function when(iso) {
  return new Date(iso).toLocaleString(LANGUAGES[current], { timeZone: "Asia/Shanghai", hour12: false });
}
