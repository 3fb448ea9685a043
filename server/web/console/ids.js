// App ids and developer organisations: an organisation holds a namespace (verified by the operator first); its
// developers ask for ids under it; the operator approves or rejects each request before any upload.

import { clear, h } from "/static/dom.js";
import { t, when } from "/static/i18n.js";

export async function render(box, ctx) {
  const requests = h("div", {});
  const status = h("div", { role: "status" });

  const load = async () => {
    const pending = await ctx.api.get("/v1/admin/app-ids?status=pending");
    if (!pending.length) return clear(requests, h("p", { class: "notice" }, t("ids.empty")));
    clear(
      requests,
      pending.map((r) => {
        const reason = h("input", { name: "reason", required: true, maxlength: 500 });
        const decide = (decision) =>
          ctx.guarded(status, async () => {
            if (!reason.value.trim()) return reason.reportValidity();
            await ctx.api.post(`/v1/admin/app-ids/${encodeURIComponent(r.app_id)}/decision`, { decision, reason: reason.value.trim() });
            ctx.announce(t("console.done"));
            await load();
          });
        return h(
          "section",
          { class: "card", "aria-label": r.app_id },
          h("h4", {}, h("code", {}, r.app_id)),
          h("p", { class: "muted" }, t("ids.requested", { org: r.org_name, at: when(r.requested_at), by: r.requested_by ?? "—" })),
          h(
            "div",
            { class: "row" },
            h("label", {}, t("reviews.reason"), reason),
            h("button", { type: "button", class: "primary", onclick: () => decide("approve") }, t("reviews.approve")),
            h("button", { type: "button", class: "danger", onclick: () => decide("reject") }, t("reviews.reject")),
          ),
        );
      }),
    );
  };

  const name = h("input", { id: "org-name", required: true, maxlength: 100 });
  const namespace = h("input", { id: "org-namespace", required: true, maxlength: 100, placeholder: "com.example" });
  const members = h("input", { id: "org-members", size: 20 });
  const form = h(
    "form",
    { class: "inline" },
    h("label", { for: name.id }, t("ids.org_name"), name),
    h("label", { for: namespace.id }, t("ids.namespace"), namespace),
    h("label", { for: members.id }, t("ids.members"), members),
    h("button", { type: "submit" }, t("ids.create_org")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    ctx.guarded(status, async () => {
      const ids = members.value.split(/[,\s]+/).filter(Boolean).map(Number);
      const org = await ctx.api.post("/v1/admin/developer-orgs", { name: name.value.trim(), namespace: namespace.value.trim(), members: ids });
      clear(status, h("p", { class: "notice" }, t("ids.org_created", { name: org.name, id: org.id, namespaces: org.namespaces.join(", ") })));
    });
  });

  clear(
    box,
    h("h3", {}, t("ids.pending")),
    requests,
    h("section", { class: "card", "aria-label": t("ids.create_org") }, h("h3", {}, t("ids.create_org")), h("p", { class: "muted" }, t("ids.org_help")), form),
    status,
  );
  await load();
}
