// What happened to me: inbox and payments waiting for my confirmation, where my code was scanned, my health
// status history, and what each app may know about me (consents per scope, granted or withdrawn here).

import { h, clear } from "/static/dom.js";
import { t, when, yuan } from "/static/i18n.js";
import { errorText } from "/app/app.js";

const empty = (key) => h("p", { class: "muted" }, t(key));

export async function renderInbox(root, { api }) {
  const [messages, payments] = await Promise.all([api.get("/v1/me/inbox"), api.get("/v1/me/payments")]);
  const pending = payments.filter((p) => p.status === "pending_confirmation");
  const paymentList = h("ul", { class: "list" });
  const drawPayments = (list) =>
    clear(paymentList, list.length ? list.map((p) => paymentItem(api, p, drawAgain)) : h("li", {}, empty("payments.none")));
  const drawAgain = async () =>
    drawPayments((await api.get("/v1/me/payments")).filter((p) => p.status === "pending_confirmation"));
  drawPayments(pending);
  clear(
    root,
    h("h2", {}, t("inbox.title")),
    h("section", { class: "card", "aria-labelledby": "pay-title" }, h("h3", { id: "pay-title" }, t("payments.title")), paymentList),
    h(
      "section",
      { class: "card", "aria-labelledby": "msg-title" },
      h("h3", { id: "msg-title" }, t("inbox.messages")),
      messages.length
        ? h(
            "ul",
            { class: "list" },
            messages.map((m) =>
              h(
                "li",
                {},
                h("div", { class: "item-head" }, h("span", {}, m.title), h("span", { class: "muted" }, m.app_name)),
                h("p", {}, m.body),
                h("div", { class: "muted" }, when(m.created_at)),
              ),
            ),
          )
        : empty("inbox.none"),
    ),
  );
}

/** A payment waiting for the resident: what, who asks, how much; confirm (charge the one-card once) or decline. */
export function paymentItem(api, payment, after) {
  const status = h("p", { role: "status" });
  const decide = (verb) => async () => {
    try {
      const done = await api.post(`/v1/me/payments/${payment.id}/${verb}`);
      status.textContent = t(`payments.${done.status}`);
      if (after) await after(done);
    } catch (error) {
      status.textContent = errorText(error);
    }
  };
  return h(
    "li",
    { dataset: { payment: String(payment.id) } },
    h("div", { class: "item-head" }, h("span", {}, payment.reason), h("span", {}, yuan(payment.amount_fen))),
    h("div", { class: "muted" }, payment.app_id, " · ", when(payment.created_at)),
    h(
      "div",
      { class: "row" },
      h("button", { type: "button", class: "primary", onclick: decide("confirm") }, t("payments.confirm")),
      h("button", { type: "button", class: "secondary", onclick: decide("decline") }, t("payments.decline")),
    ),
    status,
  );
}

export async function renderScans(root, { api }) {
  const scans = await api.get("/v1/me/scans");
  clear(
    root,
    h("h2", {}, t("scans.title")),
    h(
      "section",
      { class: "card" },
      scans.length
        ? h(
            "ul",
            { class: "list" },
            scans.map((s) =>
              h(
                "li",
                {},
                h("div", { class: "item-head" }, h("span", {}, s.terminal_name), h("span", {}, t(`scans.result.${s.result}`))),
                h("div", { class: "muted" }, when(s.at), " · ", s.scene, s.color ? ` · ${t(`colour.${s.color}`)}` : ""),
              ),
            ),
          )
        : empty("scans.none"),
    ),
  );
}

export async function renderHealth(root, { api }) {
  let status;
  try {
    status = await api.get("/v1/me/health-status");
  } catch (error) {
    return clear(root, h("h2", {}, t("health.title")), h("p", { class: "error" }, errorText(error)));
  }
  clear(
    root,
    h("h2", {}, t("health.title")),
    h(
      "section",
      { class: "card" },
      h("p", { class: `colour ${status.color}` }, t(`colour.${status.color}`)),
      status.effective_at ? h("p", { class: "muted" }, t("health.since", { at: when(status.effective_at) })) : null,
      status.history.length
        ? h(
            "ul",
            { class: "list" },
            status.history.map((e) =>
              h("li", {}, h("div", { class: "item-head" }, h("span", {}, t(`colour.${e.color}`)), h("span", { class: "muted" }, when(e.effective_at))), h("div", { class: "muted" }, e.reason)),
            ),
          )
        : empty("health.none"),
    ),
  );
}

export async function renderConsents(root, { api }) {
  const [catalog, decided] = await Promise.all([api.get("/v1/miniapps"), api.get("/v1/me/consents")]);
  const apps = catalog.filter((app) => app.scopes?.length);
  const known = new Set(apps.map((app) => app.app_id));
  const gone = decided.filter((c) => !known.has(c.app_id) && c.granted);
  clear(
    root,
    h("h2", {}, t("consents.title")),
    h("p", { class: "muted" }, t("consents.intro")),
    apps.length || gone.length ? null : empty("consents.none"),
    apps.map((app) =>
      h(
        "section",
        { class: "card", "aria-label": app.name },
        h("h3", {}, app.name),
        app.scopes.map((scope) => scopeRow(api, app.app_id, scope)),
      ),
    ),
    gone.map((c) => h("section", { class: "card" }, h("h3", {}, c.app_id), scopeRow(api, c.app_id, { name: c.scope, purpose: "", state: "granted" }))),
  );
}

/** One scope of one app: its purpose, what I decided, and the buttons to change it. */
export function scopeRow(api, appId, scope) {
  const state = h("p", { class: "muted", role: "status" });
  const buttons = h("div", { class: "row" });
  const draw = (value) => {
    state.textContent = t(`consents.state.${value}`);
    const grant = h("button", { type: "button", class: "primary" }, t("consents.grant"));
    grant.addEventListener("click", () => change(true));
    const withdraw = h("button", { type: "button", class: "danger" }, t(value === "granted" ? "consents.revoke" : "consents.refuse"));
    withdraw.addEventListener("click", () => change(false));
    clear(buttons, value === "granted" ? withdraw : [grant, value === "not_asked" ? withdraw : null]);
  };
  const change = async (granted) => {
    const path = `/v1/me/consents/${encodeURIComponent(appId)}/${encodeURIComponent(scope.name)}`;
    try {
      if (granted) await api.put(path, { granted: true });
      else if (scope.state === "granted") await api.del(path);
      else await api.put(path, { granted: false });
      scope.state = granted ? "granted" : "refused";
      draw(scope.state);
    } catch (error) {
      state.textContent = errorText(error);
    }
  };
  draw(scope.state);
  return h(
    "div",
    { class: "scope", dataset: { scope: scope.name } },
    h("p", {}, h("strong", {}, scopeLabel(scope.name))),
    scope.purpose ? h("p", {}, t("consents.purpose"), " ", scope.purpose) : null,
    state,
    buttons,
  );
}

function scopeLabel(name) {
  if (name.startsWith("registered_in:")) return t("scope.registered_in", { county: name.slice(14) });
  return t(`scope.${name}`) === `scope.${name}` ? name : t(`scope.${name}`);
}
