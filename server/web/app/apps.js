// The mini-app catalog, and an app's own pages (`ui/`) in a sandboxed frame through /static/miniapp-host.js.
// Consent and payment prompts are drawn here, by the shell, never by the app's page.

import { h, clear } from "/static/dom.js";
import { t, yuan } from "/static/i18n.js";
import { openMiniapp } from "/static/miniapp-host.js";

export async function render(root, { api }) {
  const catalog = await api.get("/v1/miniapps");
  clear(
    root,
    h("h2", {}, t("apps.title")),
    catalog.length
      ? h(
          "ul",
          { class: "list card" },
          catalog.map((app) =>
            h(
              "li",
              {},
              h(
                "div",
                { class: "item-head" },
                h("a", { href: `#/app/${encodeURIComponent(app.app_id)}` }, app.name),
                h("span", { class: "muted" }, app.version),
              ),
              app.scopes?.length ? h("div", { class: "muted" }, t("apps.asks", { n: app.scopes.length })) : null,
            ),
          ),
        )
      : h("p", { class: "muted" }, t("apps.none")),
  );
}

/** A yes/no question in a dialog the app's page cannot draw over; resolves true for yes. */
export function ask(title, body, yes, no) {
  return new Promise((resolve) => {
    const previous = document.activeElement;
    const done = (answer) => () => {
      back.remove();
      if (previous && previous.focus) previous.focus();
      resolve(answer);
    };
    const ok = h("button", { type: "button", class: "primary", onclick: done(true) }, yes);
    const dialog = h(
      "div",
      { class: "dialog stack", role: "dialog", "aria-modal": "true", "aria-labelledby": "dialog-title" },
      h("h2", { id: "dialog-title" }, title),
      body,
      h("div", { class: "row" }, ok, h("button", { type: "button", class: "secondary", onclick: done(false) }, no)),
    );
    const back = h("div", { class: "dialog-back" }, dialog);
    back.addEventListener("keydown", (event) => {
      if (event.key === "Escape") done(null)(); // dismissed: nothing recorded, nothing charged
    });
    document.body.append(back);
    ok.focus();
  });
}

export async function renderApp(root, { api, params, go }) {
  const [appId] = params;
  const catalog = await api.get("/v1/miniapps");
  const app = catalog.find((entry) => entry.app_id === appId);
  if (!app) return clear(root, h("p", { class: "error" }, t("apps.unknown")), h("a", { href: "#/apps" }, t("apps.back")));
  const frame = h("div", { class: "miniapp", id: "miniapp" });
  clear(root, h("h2", {}, app.name), frame);
  const opened = openMiniapp(frame, appId, {
    version: app.version,
    title: app.name,
    getToken: () => api.token(),
    // The host records the answer (PUT /v1/me/consents/...) and asks only while the resident has not decided.
    onConsent: ({ appName, scope, purpose }) =>
      ask(
        t("consent.title", { app: appName || app.name }),
        h("div", {}, h("p", {}, h("strong", {}, scopeName(scope))), h("p", {}, t("consents.purpose"), " ", purpose || "")),
        t("consent.allow"),
        t("consent.deny"),
      ),
    // The host confirms or declines the payment with the resident's answer.
    onPayment: (payment) =>
      ask(
        t("payment.title", { app: payment.appName || app.name }),
        h("p", {}, payment.reason || "", " ", h("strong", {}, yuan(payment.amount_fen))),
        t("payments.confirm"),
        t("payments.decline"),
      ),
    onShowCode: async () => go("#/code"),
    // The core checked the pass is this app's and the resident's, and drew it (the page never draws its own).
    onShowPass: ({ image }) => showPass(t("pass.title", { app: app.name }), image),
  });
  return () => opened.close();
}

/** A pass full-screen, over the app's page, until the resident closes it; resolves then. */
function showPass(title, image) {
  return new Promise((resolve) => {
    const previous = document.activeElement;
    const close = () => {
      back.remove();
      if (previous && previous.focus) previous.focus();
      resolve();
    };
    const button = h("button", { type: "button", class: "primary", onclick: close }, t("pass.close"));
    const back = h(
      "div",
      { class: "pass-back", id: "pass", role: "dialog", "aria-modal": "true", "aria-labelledby": "pass-title" },
      h(
        "div",
        { class: "code stack" },
        h("h2", { id: "pass-title" }, title),
        h("div", { class: "code-frame" }, h("img", { id: "pass-qr", src: image, alt: t("pass.alt") })),
        button,
      ),
    );
    back.addEventListener("keydown", (event) => {
      if (event.key === "Escape") close();
    });
    document.body.append(back);
    button.focus();
  });
}

function scopeName(scope) {
  if (scope.startsWith("registered_in:")) return t("scope.registered_in", { county: scope.slice(14) });
  const key = `scope.${scope}`;
  return t(key) === key ? scope : t(key);
}
