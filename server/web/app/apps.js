// The mini-app catalog, and an app's own pages (`ui/`) in a sandboxed frame through /static/miniapp-host.js.
// Consent and payment prompts are drawn here, by the shell, never by the app's page.

import { h, clear } from "/static/dom.js";
import { t, yuan } from "/static/i18n.js";
import { errorText } from "/app/app.js";
import { scopeRow } from "/app/records.js";

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
              app.scopes.length ? h("div", { class: "muted" }, t("apps.asks", { n: app.scopes.length })) : null,
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
      if (event.key === "Escape") done(false)();
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
  const problem = h("p", { class: "error", role: "alert" });
  clear(root, h("h2", {}, app.name), problem, frame);
  let host;
  try {
    host = await import("/static/miniapp-host.js");
  } catch {
    problem.textContent = t("apps.no_pages");
    root.append(...app.scopes.map((scope) => scopeRow(api, app.app_id, scope)));
    return;
  }
  const opened = await host.openMiniapp(frame, appId, {
    getToken: () => api.token(),
    onConsent: async (request) => {
      const scopes = request.scopes || [];
      const purposes = new Map(app.scopes.map((s) => [s.name, s.purpose]));
      const granted = await ask(
        t("consent.title", { app: app.name }),
        h(
          "ul",
          { class: "list" },
          scopes.map((s) => {
            const name = typeof s === "string" ? s : s.name;
            return h("li", {}, h("strong", {}, name), h("p", {}, s.purpose || purposes.get(name) || ""));
          }),
        ),
        t("consent.allow"),
        t("consent.deny"),
      );
      for (const s of scopes) {
        const name = typeof s === "string" ? s : s.name;
        try {
          await api.put(`/v1/me/consents/${encodeURIComponent(appId)}/${encodeURIComponent(name)}`, { granted });
        } catch (error) {
          problem.textContent = errorText(error);
        }
      }
      return granted;
    },
    onPayment: async (payment) => {
      const yes = await ask(
        t("payment.title", { app: app.name }),
        h("p", {}, payment.reason || "", " ", h("strong", {}, yuan(payment.amount_fen))),
        t("payments.confirm"),
        t("payments.decline"),
      );
      const done = await api.post(`/v1/me/payments/${payment.id}/${yes ? "confirm" : "decline"}`);
      return done;
    },
    onShowCode: () => go("#/code"),
  });
  return opened && typeof opened.close === "function" ? () => opened.close() : null;
}
