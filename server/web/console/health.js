// The health authority's CSV import: colours by ID number, each bad row reported with its line.

import { clear, h } from "/static/dom.js";
import { t } from "/static/i18n.js";

export async function render(box, ctx) {
  const file = h("input", { id: "health-file", type: "file", accept: ".csv,text/csv" });
  const text = h("textarea", { id: "health-text", rows: 6, spellcheck: "false" });
  const result = h("div", { role: "status" });
  const form = h(
    "form",
    {},
    h("p", { class: "muted" }, t("health.help")),
    h("label", { for: file.id }, t("health.file"), file),
    h("label", { for: text.id }, t("health.text"), text),
    h("div", { class: "row" }, h("button", { type: "submit", class: "primary" }, t("health.import"))),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    ctx.guarded(result, async () => {
      const body = file.files.length ? await file.files[0].arrayBuffer() : new TextEncoder().encode(text.value);
      const response = await ctx.api.fetch("/v1/authority/health-status/imports", {
        method: "POST",
        headers: { "content-type": "text/csv" },
        body,
      });
      const answer = await response.json();
      if (!response.ok) throw Object.assign(new Error(answer.detail || answer.title), { code: answer.code });
      clear(
        result,
        h("p", { class: "notice" }, t("health.result", { applied: answer.applied, rejected: answer.rejected })),
        answer.repeated ? h("p", { class: "muted" }, t("health.repeated")) : "",
        h("ul", { class: "errors" }, answer.errors.map((e) => h("li", { class: "fail" }, t("health.line", { line: e.line, reason: e.reason })))),
      );
      ctx.announce(t("health.result", { applied: answer.applied, rejected: answer.rejected }));
    });
  });
  clear(box, h("section", { class: "card" }, form, result));
}
