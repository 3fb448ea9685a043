// The operator console: sign in by SMS code, then the sections the account's roles may use. The server decides
// (every route has its role guard); the console only leaves out what a role would be refused.

import { createClient, devCode } from "/static/api.js";
import { clear, h } from "/static/dom.js";
import { language, onLanguage, setLanguage, t, translate } from "/static/i18n.js";
import "./messages.js";
import * as apps from "./apps.js";
import * as audit from "./audit.js";
import * as health from "./health.js";
import * as ids from "./ids.js";
import * as onecard from "./onecard.js";
import * as staff from "./staff.js";
import * as terminals from "./terminals.js";
import * as trust from "./trust.js";

const SECTIONS = [
  { id: "reviews", roles: ["operator"], render: apps.renderReviews },
  { id: "apps", roles: ["operator"], render: apps.renderApps },
  { id: "ids", roles: ["operator"], render: ids.render },
  { id: "staff", roles: ["operator", "app_admin"], render: staff.render },
  { id: "terminals", roles: ["operator"], render: terminals.render },
  { id: "trust", roles: ["operator"], render: trust.render },
  { id: "onecard", roles: ["operator"], render: onecard.render },
  { id: "audit", roles: ["operator"], render: audit.render },
  { id: "health", roles: ["health_authority"], render: health.render },
];

const api = createClient({ storageKey: "yima.console" });
const main = document.getElementById("main");
const nav = document.getElementById("nav");
let me = null;

function announce(text) {
  document.getElementById("announce").textContent = text;
}

/** The shared tools a section gets. */
const ctx = {
  api,
  announce,
  /** A message box for an error, with the server's stable code. */
  failure(error) {
    const code = error?.code ? ` (${error.code})` : "";
    return h("p", { class: "error", role: "alert" }, t("console.error", { error: (error?.message ?? String(error)) + code }));
  },
  /** Run `work`, showing its error in `box` (cleared first). */
  async guarded(box, work) {
    clear(box);
    try {
      await work();
    } catch (error) {
      clear(box, ctx.failure(error));
    }
  },
};

function allowed() {
  const roles = new Set(me?.roles ?? []);
  if (roles.has("administrator")) roles.add("operator");
  if ((me?.staff ?? []).some((m) => m.role === "admin")) roles.add("app_admin"); // an app's own admin
  return SECTIONS.filter((s) => s.roles.some((r) => roles.has(r)));
}

function signInView() {
  const phone = h("input", { id: "phone", name: "phone", inputmode: "tel", autocomplete: "tel", required: true });
  const code = h("input", { id: "code", name: "code", inputmode: "numeric", autocomplete: "one-time-code", required: true });
  const status = h("div", { role: "status" });
  const send = h("button", { type: "button" }, t("signin.send"));
  send.addEventListener("click", () =>
    ctx.guarded(status, async () => {
      await api.requestCode(phone.value.trim());
      const sent = await devCode(phone.value.trim());
      clear(status, h("p", { class: "notice" }, t("signin.sent"), sent ? ` · ${t("signin.dev_code", { code: sent })}` : ""));
    }),
  );
  const form = h(
    "form",
    { class: "card signin" },
    h("h2", {}, t("signin.title")),
    h("label", { for: "phone" }, t("signin.phone"), phone),
    h("div", { class: "row" }, send),
    h("label", { for: "code" }, t("signin.code"), code),
    h("div", { class: "row" }, h("button", { type: "submit", class: "primary" }, t("signin.submit"))),
    status,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    ctx.guarded(status, async () => {
      await api.signIn(phone.value.trim(), code.value.trim());
      await start();
    });
  });
  return form;
}

async function start() {
  nav.hidden = true;
  document.getElementById("signout").hidden = true;
  document.getElementById("who").textContent = "";
  if (!api.signedIn()) {
    clear(main, signInView());
    return;
  }
  me = await api.get("/v1/me");
  me.staff = await api.get("/v1/me/staff");
  ctx.me = me;
  document.getElementById("signout").hidden = false;
  document.getElementById("who").textContent = [me.phone, ...me.roles.map((r) => t(`role.${r}`)).filter((r) => !r.startsWith("role."))].join(" · ");
  route();
}

function route() {
  if (!me) return start();
  const sections = allowed();
  if (sections.length === 0) {
    clear(main, h("p", { class: "notice" }, t("console.nothing")));
    return;
  }
  const wanted = location.hash.replace(/^#\/?/, "");
  const section = sections.find((s) => s.id === wanted) ?? sections[0];
  clear(
    nav,
    sections.map((s) =>
      h("a", { href: `#/${s.id}`, "aria-current": s === section ? "page" : false }, t(`nav.${s.id}`)),
    ),
  );
  nav.hidden = false;
  const body = h("div", {});
  clear(main, h("h2", {}, t(`nav.${section.id}`)), body);
  ctx.guarded(body, () => section.render(body, ctx));
}

document.getElementById("lang").addEventListener("click", () => setLanguage(language() === "en" ? "zh" : "en"));
onLanguage(() => {
  document.getElementById("lang").textContent = language() === "en" ? "中文" : "English";
  start();
});
document.getElementById("signout").addEventListener("click", async () => {
  await api.signOut();
  me = null;
  start();
});
api.onSignedOut(() => {
  me = null;
  start();
});
window.addEventListener("hashchange", route);

translate();
document.getElementById("lang").textContent = language() === "en" ? "中文" : "English";
start().catch((error) => clear(main, ctx.failure(error)));
