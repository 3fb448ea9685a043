// One-card reconciliation by day: the provider's bill against our ledger, every difference listed.

import { clear, h } from "/static/dom.js";
import { t, yuan } from "/static/i18n.js";

export async function render(box, ctx) {
  const today = new Date(Date.now() + 8 * 3600_000).toISOString().slice(0, 10); // China Standard Time
  const date = h("input", { id: "onecard-date", type: "date", value: today, required: true });
  const report = h("div", { role: "status" });
  const form = h("form", { class: "inline" }, h("label", { for: date.id }, t("onecard.date"), date), h("button", { type: "submit", class: "primary" }, t("onecard.load")));
  const load = () =>
    ctx.guarded(report, async () => {
      const r = await ctx.api.get(`/v1/admin/onecard/reconciliation?date=${encodeURIComponent(date.value)}`);
      clear(
        report,
        h("p", { class: "notice" }, t("onecard.summary", { provider: r.provider, pc: r.provider_count, pt: yuan(r.provider_total_fen), lc: r.ledger_count, lt: yuan(r.ledger_total_fen), matched: r.matched })),
        r.mismatches.length
          ? h(
              "table",
              {},
              h("thead", {}, h("tr", {}, [t("onecard.kind"), t("onecard.order"), t("onecard.provider_amount"), t("onecard.ledger_amount"), ""].map((x) => h("th", {}, x)))),
              h(
                "tbody",
                {},
                r.mismatches.map((m) =>
                  h("tr", {}, h("td", {}, m.kind), h("td", {}, h("code", {}, m.order_no ?? "—")), h("td", {}, m.provider_amount_fen == null ? "—" : yuan(m.provider_amount_fen)), h("td", {}, m.ledger_amount_fen == null ? "—" : yuan(m.ledger_amount_fen)), h("td", {}, m.detail ?? "")),
                ),
              ),
            )
          : h("p", { class: "ok" }, t("onecard.clean")),
      );
    });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  clear(box, form, report);
  await load();
}
