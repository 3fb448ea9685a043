// One-card: balance, top-up through the payment provider's cashier, and the month's statement.
// Under `yima dev` the top-up's pay_url is the payment simulator's cashier; the shell draws that cashier itself
// (#/cashier/...), as the provider's H5 page would be drawn in production (pay_url opened as it is).

import { h, clear } from "/static/dom.js";
import { t, when, yuan } from "/static/i18n.js";
import { errorText } from "/app/app.js";

const AMOUNTS = [1000, 5000, 10000];
const DEV_CASHIER = "/v1/dev/sim/cashier/";
const KINDS = ["topup", "offline_ride", "refund"]; // named in the page's language; a charge by its reason

function thisMonth() {
  return new Date().toLocaleDateString("en-CA", { timeZone: "Asia/Shanghai" }).slice(0, 7);
}

export async function render(root, { api, go }) {
  let card;
  try {
    card = await api.get("/v1/me/onecard");
  } catch (error) {
    if (error.code === "onecard.not_open") return clear(root, openForm(api, go));
    if (error.code === "identity.required") return go("#/realname");
    throw error;
  }
  const message = h("p", { role: "alert", class: "error" });
  const topups = AMOUNTS.map((fen) => {
    const button = h("button", { type: "button", class: "secondary" }, yuan(fen));
    button.addEventListener("click", async () => {
      message.textContent = "";
      topups.forEach((b) => (b.disabled = true));
      try {
        const order = await api.post(
          "/v1/me/onecard/topups",
          { amount_fen: fen },
          { headers: { "Idempotency-Key": `topup-${crypto.randomUUID()}` } },
        );
        const url = new URL(order.pay_url, location.href);
        if (url.pathname.startsWith(DEV_CASHIER)) {
          go(`#/cashier/${encodeURIComponent(url.pathname.slice(DEV_CASHIER.length))}/${encodeURIComponent(order.order_no)}`);
        } else {
          sessionStorage.setItem("yima.app.topup", order.order_no);
          location.assign(order.pay_url);
        }
      } catch (error) {
        topups.forEach((b) => (b.disabled = false));
        message.textContent = errorText(error);
      }
    });
    return button;
  });
  const month = h("input", { id: "month", type: "month", value: thisMonth(), max: thisMonth() });
  const statement = h("div", { id: "statement" });
  const load = async () => {
    try {
      clear(statement, statementView(await api.get(`/v1/me/onecard/statements?month=${month.value}`)));
    } catch (error) {
      clear(statement, h("p", { class: "error" }, errorText(error)));
    }
  };
  month.addEventListener("change", load);
  clear(
    root,
    h("h2", {}, t("card.title")),
    h(
      "section",
      { class: "card", "aria-labelledby": "balance-label" },
      h("p", { class: "muted", id: "balance-label" }, t("card.balance")),
      h("p", { class: "balance", id: "balance" }, yuan(card.balance_fen)),
      h("p", { class: "muted" }, t("card.number"), " ", card.card_number),
    ),
    h(
      "section",
      { class: "card", "aria-labelledby": "topup-title" },
      h("h3", { id: "topup-title" }, t("card.topup")),
      h("div", { class: "row" }, topups),
      message,
    ),
    h(
      "section",
      { class: "card", "aria-labelledby": "statement-title" },
      h("h3", { id: "statement-title" }, t("card.statement")),
      h("label", { for: "month" }, t("card.month")),
      month,
      statement,
    ),
  );
  await load();
}

function statementView(s) {
  const rows = s.entries.map((e) =>
    h(
      "li",
      {},
      h(
        "div",
        { class: "item-head" },
        h("span", {}, KINDS.includes(e.kind) ? t(`card.kind.${e.kind}`) : e.description),
        h("span", {}, (e.amount_fen > 0 ? "+" : "") + yuan(e.amount_fen)),
      ),
      h("div", { class: "muted" }, when(e.posted_at), " · ", t("card.after"), " ", yuan(e.balance_fen)),
    ),
  );
  return [
    h("p", {}, t("card.totals", { in: yuan(s.credits_fen), out: yuan(s.debits_fen), close: yuan(s.closing_balance_fen) })),
    rows.length ? h("ul", { class: "list" }, rows) : h("p", { class: "muted" }, t("card.no_entries")),
  ];
}

function openForm(api, go) {
  const number = h("input", { id: "ss-card", name: "ss_card_number", maxlength: 20, autocomplete: "off", required: true });
  const message = h("p", { role: "alert", class: "error" });
  const form = h(
    "form",
    { class: "card stack" },
    h("h2", {}, t("card.open_title")),
    h("p", { class: "muted" }, t("card.open_why")),
    h("label", { for: "ss-card" }, t("card.ss_number")),
    number,
    message,
    h("button", { type: "submit", class: "primary" }, t("card.open")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api.post("/v1/me/onecard", { ss_card_number: number.value });
      go("#/card");
    } catch (error) {
      message.textContent = errorText(error);
    }
  });
  return form;
}

/** The payment simulator's cashier (development only): the order, a pay button, then the credited balance. */
export async function renderCashier(root, { api, params, go }) {
  const [prepayId, orderNo] = params;
  const response = await fetch(`${DEV_CASHIER}${encodeURIComponent(prepayId)}`);
  if (!response.ok) return clear(root, h("p", { class: "error" }, t("cashier.unknown")));
  const order = await response.json();
  const status = h("p", { role: "status", id: "cashier-status" });
  const pay = h("button", { type: "button", class: "primary" }, t("cashier.pay", { amount: yuan(order.amount_fen) }));
  pay.addEventListener("click", async () => {
    pay.disabled = true;
    const paid = await fetch(new URL(order.pay, location.href).pathname, { method: "POST" });
    if (!paid.ok) {
      pay.disabled = false;
      status.textContent = t("cashier.failed");
      return;
    }
    status.textContent = t("cashier.waiting");
    for (let attempt = 0; attempt < 30; attempt += 1) {
      const topup = await api.get(`/v1/me/onecard/topups/${encodeURIComponent(orderNo)}`);
      if (topup.credited) {
        status.textContent = t("cashier.done", { amount: yuan(topup.amount_fen) });
        return clear(root, h("section", { class: "card stack" }, h("h2", {}, t("cashier.title")), status, back()));
      }
      await new Promise((resolve) => setTimeout(resolve, 1000)); // the provider notifies within a second or two
    }
    status.textContent = t("cashier.pending");
  });
  const back = () => h("a", { class: "button", href: "#/card" }, t("cashier.back"));
  clear(
    root,
    h(
      "section",
      { class: "card stack" },
      h("h2", {}, t("cashier.title")),
      h("p", { class: "muted" }, t("cashier.simulated")),
      h("p", { class: "balance" }, yuan(order.amount_fen)),
      h("p", { class: "muted" }, t("cashier.order"), " ", order.order_no),
      pay,
      status,
      back(),
    ),
  );
}
