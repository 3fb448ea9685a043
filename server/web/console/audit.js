// The audit log: search (newest first, paged by seq) and verification of the whole hash chain, naming the first
// broken record as it is stored now.

import { clear, h } from "/static/dom.js";
import { t, when } from "/static/i18n.js";

function rows(records) {
  return records.map((r) =>
    h(
      "tr",
      { dataset: { seq: r.seq } },
      h("td", {}, String(r.seq)),
      h("td", {}, when(r.at)),
      h("td", {}, h("code", {}, r.actor)),
      h("td", {}, r.action),
      h("td", {}, h("code", {}, r.target)),
      h("td", {}, h("code", {}, JSON.stringify(r.details))),
    ),
  );
}

function table(records) {
  return h(
    "table",
    {},
    h("thead", {}, h("tr", {}, ["seq", "at", "actor", "action", "target", "details"].map((x) => h("th", {}, t(`audit.${x}`))))),
    h("tbody", {}, rows(records)),
  );
}

export async function render(box, ctx) {
  const q = h("input", { id: "audit-q", type: "search", maxlength: 200 });
  const found = h("div", {});
  const verified = h("div", { role: "status" });
  let last = null;

  const search = async (more) => {
    const params = new URLSearchParams({ limit: "50" });
    if (q.value.trim()) params.set("q", q.value.trim());
    if (more && last) params.set("before", String(last));
    const records = await ctx.api.get(`/v1/admin/audit?${params}`);
    last = records.length ? records[records.length - 1].seq : last;
    const body = more ? found.querySelector("tbody") : null;
    if (body) body.append(...rows(records));
    else clear(found, table(records));
    found.querySelector(".more")?.remove();
    if (records.length === 50) found.append(h("button", { type: "button", class: "more", onclick: () => ctx.guarded(verified, () => search(true)) }, t("audit.more")));
  };

  const form = h("form", { class: "inline", role: "search" }, h("label", { for: q.id }, t("audit.q"), q), h("button", { type: "submit", class: "primary" }, t("audit.search")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    ctx.guarded(verified, () => search(false));
  });
  const verify = h("button", { type: "button" }, t("audit.verify"));
  verify.addEventListener("click", () =>
    ctx.guarded(verified, async () => {
      const v = await ctx.api.post("/v1/admin/audit/verify");
      if (v.intact) clear(verified, h("p", { class: "notice ok" }, t("audit.intact", { checked: v.checked, checkpoints: v.checkpoints })));
      else
        clear(
          verified,
          h("p", { class: "error", role: "alert" }, t("audit.broken", { seq: v.broken.seq, problem: v.broken.problem, detail: v.broken.detail ?? "" })),
          v.broken.record ? [h("p", {}, t("audit.broken_record")), table([v.broken.record])] : "",
        );
    }),
  );
  clear(box, h("div", { class: "row" }, form, verify), verified, found);
  await search(false);
}
