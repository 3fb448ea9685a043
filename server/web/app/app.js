// The resident shell: session, chrome (language, elder mode, tabs), a hash router, sign-in, real name and "me".
// Each page is a module exporting `render(main, ctx)`; it may return a function that stops its timers.

import { createClient, devCode } from "/static/api.js";
import { h, clear } from "/static/dom.js";
import { addMessages, language, setLanguage, t, translate, onLanguage } from "/static/i18n.js";
import { MESSAGES } from "/app/messages.js";

addMessages(MESSAGES);

export const api = createClient({ storageKey: "yima.app.session" });
const main = document.getElementById("main");
const tabs = document.getElementById("tabs");
const ELDER = "yima.app.elder";

const PAGES = {
  code: () => import("/app/code.js"),
  card: () => import("/app/card.js"),
  cashier: () => import("/app/card.js").then((m) => ({ render: m.renderCashier })),
  apps: () => import("/app/apps.js"),
  app: () => import("/app/apps.js").then((m) => ({ render: m.renderApp })),
  inbox: () => import("/app/records.js").then((m) => ({ render: m.renderInbox })),
  scans: () => import("/app/records.js").then((m) => ({ render: m.renderScans })),
  health: () => import("/app/records.js").then((m) => ({ render: m.renderHealth })),
  consents: () => import("/app/records.js").then((m) => ({ render: m.renderConsents })),
  me: () => Promise.resolve({ render: renderMe }),
  realname: () => Promise.resolve({ render: renderRealName }),
};
const TAB_OF = { cashier: "card", app: "apps", scans: "me", health: "me", consents: "me", realname: "me" };

let stop = null;

/** Say something to screen readers without moving focus. */
export function announce(text) {
  const region = document.getElementById("announce");
  region.textContent = "";
  region.textContent = text;
}

export function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

let generation = 0;

async function route() {
  if (stop) stop();
  stop = null;
  const mine = ++generation;
  if (!api.signedIn()) {
    tabs.hidden = true;
    return renderSignIn(main);
  }
  tabs.hidden = false;
  const [name, ...params] = location.hash.replace(/^#\/?/, "").split("/");
  const page = name in PAGES ? name : "code";
  for (const link of tabs.querySelectorAll("a")) {
    if (link.dataset.tab === (TAB_OF[page] || page)) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const module = await PAGES[page]();
  if (mine !== generation) return; // the resident moved on while the page's module loaded
  // Each page draws into a view of its own: a page still awaiting the network after the resident moved on
  // draws into a view no longer on screen.
  const view = document.createElement("div");
  clear(main, view);
  const cleanup = (await module.render(view, { api, params: params.map(decodeURIComponent), go, announce })) || null;
  if (mine === generation) stop = cleanup;
  else if (cleanup) cleanup();
}

// ---- chrome ---------------------------------------------------------------------------------------------

function applyElder(on) {
  document.documentElement.classList.toggle("elder", on);
  document.getElementById("elder").setAttribute("aria-pressed", String(on));
  localStorage.setItem(ELDER, on ? "1" : "0");
}

function applyLanguageButton() {
  const button = document.getElementById("lang");
  const other = language() === "zh" ? "en" : "zh";
  button.textContent = other === "en" ? "English" : "中文";
  button.lang = other === "en" ? "en" : "zh-CN";
}

document.getElementById("elder").addEventListener("click", () => {
  applyElder(!document.documentElement.classList.contains("elder"));
});
document.getElementById("lang").addEventListener("click", () => setLanguage(language() === "zh" ? "en" : "zh"));
onLanguage(() => {
  applyLanguageButton();
  route();
});
api.onSignedOut(() => route());
window.addEventListener("hashchange", route);

// ---- sign-in ------------------------------------------------------------------------------------------

function renderSignIn(root) {
  const phone = h("input", {
    id: "phone", name: "phone", type: "tel", inputmode: "numeric", autocomplete: "tel", maxlength: 11, required: true,
  });
  const code = h("input", {
    id: "otp", name: "code", inputmode: "numeric", autocomplete: "one-time-code", maxlength: 6, required: true,
  });
  const message = h("p", { role: "alert", class: "error" });
  const send = h("button", { type: "button", class: "secondary" }, t("signin.send"));
  send.addEventListener("click", async () => {
    message.textContent = "";
    if (!/^1[3-9][0-9]{9}$/.test(phone.value)) {
      message.textContent = t("signin.phone_invalid");
      return phone.focus();
    }
    send.disabled = true;
    try {
      await api.requestCode(phone.value);
      message.textContent = "";
      announce(t("signin.sent"));
      status.textContent = t("signin.sent");
      devCode(phone.value).then((sent) => {
        if (sent) status.textContent = t("signin.dev_code", { code: sent });
      });
      code.focus();
      countdown(send, 60);
    } catch (error) {
      send.disabled = false;
      message.textContent = errorText(error);
    }
  });
  const status = h("p", { class: "muted", "aria-live": "polite" });
  const form = h(
    "form",
    { class: "card stack", novalidate: true },
    h("h2", {}, t("signin.title")),
    h("p", { class: "muted" }, t("signin.intro")),
    h("label", { for: "phone" }, t("signin.phone")),
    phone,
    h("label", { for: "otp" }, t("signin.code")),
    h("div", { class: "row" }, code, send),
    status,
    message,
    h("button", { type: "submit", class: "primary" }, t("signin.submit")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.textContent = "";
    try {
      await api.signIn(phone.value, code.value);
      announce(t("signin.done"));
      go("#/code");
    } catch (error) {
      message.textContent = errorText(error);
    }
  });
  clear(root, form);
  phone.focus();
}

function countdown(button, seconds) {
  const tick = () => {
    if (!button.isConnected) return;
    if (seconds <= 0) {
      button.disabled = false;
      button.textContent = t("signin.send");
      return;
    }
    button.textContent = t("signin.resend_in", { s: seconds });
    seconds -= 1;
    setTimeout(tick, 1000);
  };
  tick();
}

/** A reader's message for an API error: known codes are translated, others keep the server's words. */
export function errorText(error) {
  const key = `error.${error.code}`;
  const text = t(key);
  if (text !== key) return text;
  return error.detail || t("error.generic");
}

// ---- me and real name ------------------------------------------------------------------------------------

async function renderMe(root, { api }) {
  const me = await api.get("/v1/me");
  const who = me.real_name
    ? h("p", {}, `${me.real_name.name} · ${me.real_name.id_number}`)
    : h("p", {}, h("a", { href: "#/realname" }, t("me.verify")));
  const signOut = h("button", { type: "button", class: "danger" }, t("me.signout"));
  signOut.addEventListener("click", () => api.signOut());
  clear(
    root,
    h("h2", {}, t("nav.me")),
    h("section", { class: "card" }, h("p", { class: "muted" }, t("me.phone"), " ", me.phone), who),
    h(
      "nav",
      { class: "card", "aria-label": t("me.more") },
      h(
        "ul",
        { class: "list" },
        h("li", {}, h("a", { href: "#/scans" }, t("scans.title"))),
        h("li", {}, h("a", { href: "#/health" }, t("health.title"))),
        h("li", {}, h("a", { href: "#/consents" }, t("consents.title"))),
        h("li", {}, h("a", { href: "#/inbox" }, t("inbox.title"))),
      ),
    ),
    signOut,
  );
}

async function renderRealName(root, { api }) {
  const me = await api.get("/v1/me");
  if (me.verified) return go("#/me");
  clear(root, realNameForm(api, () => go("#/code")));
}

/** The real-name form (name + ID number), also shown by the code page when the code needs it. */
export function realNameForm(api, done) {
  const name = h("input", { id: "rn-name", name: "name", autocomplete: "name", maxlength: 60, required: true });
  const idNumber = h("input", { id: "rn-id", name: "id_number", maxlength: 18, required: true, autocomplete: "off" });
  const message = h("p", { role: "alert", class: "error" });
  const form = h(
    "form",
    { class: "card stack" },
    h("h2", {}, t("realname.title")),
    h("p", { class: "muted" }, t("realname.why")),
    h("label", { for: "rn-name" }, t("realname.name")),
    name,
    h("label", { for: "rn-id" }, t("realname.id")),
    idNumber,
    message,
    h("button", { type: "submit", class: "primary" }, t("realname.submit")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.textContent = "";
    try {
      await api.put("/v1/me/identity", { name: name.value.trim(), id_number: idNumber.value.trim().toUpperCase() });
      announce(t("realname.done"));
      done();
    } catch (error) {
      message.textContent = errorText(error);
    }
  });
  return form;
}

// ---- start ------------------------------------------------------------------------------------------------

applyElder(localStorage.getItem(ELDER) === "1");
applyLanguageButton();
translate();
route();
if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/app/sw.js", { scope: "/app/" }).catch(() => {
    // no offline copy this time (private mode, or an old browser): the shell still works online
  });
}
