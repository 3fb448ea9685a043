// Staff of a mini-app: who holds which of its declared roles ([staff.roles]), at which unit ([staff.units]) or
// app-wide. Operators grant and revoke every role in every app; an app's own `admin` (not an operator) sees only
// the apps it administers, and the server lets it manage only its units. Each change is audited by the server.

import { clear, h } from "/static/dom.js";
import { t, when } from "/static/i18n.js";

export async function render(box, ctx) {
  const roles = new Set(ctx.me?.roles ?? []);
  const operator = roles.has("operator") || roles.has("administrator");
  const administered = [...new Set((ctx.me?.staff ?? []).filter((m) => m.role === "admin").map((m) => m.app_id))];
  const apps = operator
    ? await ctx.api.get("/v1/admin/miniapps")
    : administered.map((id) => ({ app_id: id, name: t("staff.your_app") }));
  if (!apps.length) return clear(box, h("p", { class: "notice" }, t("apps.empty")));
  const app = h("select", { id: "staff-app" }, apps.map((a) => h("option", { value: a.app_id }, `${a.name} · ${a.app_id}`)));
  const grants = h("div", {});
  const status = h("div", { role: "status" });
  const base = () => `/v1/miniapps/${encodeURIComponent(app.value)}/staff`;

  const load = async () => {
    const held = await ctx.api.get(base());
    const revoke = (g) =>
      ctx.guarded(status, async () => {
        const unit = g.unit ? `?unit=${encodeURIComponent(g.unit)}` : "";
        await ctx.api.del(`${base()}/${g.account_id}/${encodeURIComponent(g.role)}${unit}`);
        ctx.announce(t("console.done"));
        await load();
      });
    clear(
      grants,
      held.length
        ? h(
            "table",
            {},
            h("thead", {}, h("tr", {}, [t("staff.account"), t("staff.role"), t("staff.unit"), t("staff.granted"), ""].map((x) => h("th", {}, x)))),
            h(
              "tbody",
              {},
              held.map((g) =>
                h(
                  "tr",
                  { dataset: { account: g.account_id, role: g.role } },
                  h("td", {}, String(g.account_id)),
                  h("td", {}, g.role),
                  h("td", {}, g.unit ? h("code", {}, g.unit) : t("staff.app_wide")),
                  h("td", {}, `${when(g.granted_at)} · ${g.granted_by}`),
                  h("td", {}, h("button", { type: "button", class: "danger", onclick: () => revoke(g) }, t("staff.revoke"))),
                ),
              ),
            ),
          )
        : h("p", { class: "notice" }, t("staff.none")),
    );
  };

  const account = h("input", { id: "staff-account", type: "number", min: 1, required: true });
  const role = h("input", { id: "staff-role", required: true, pattern: "[a-z][a-z0-9_]{0,31}", size: 12 });
  const unit = h("input", { id: "staff-unit", pattern: "[a-z][a-z0-9_]{0,31}:[A-Za-z0-9][A-Za-z0-9._\\-]{0,63}", placeholder: "clinic:guangde-people-1", size: 26 });
  const form = h(
    "form",
    { class: "inline" },
    h("label", { for: account.id }, t("staff.account"), account),
    h("label", { for: role.id }, t("staff.role"), role),
    h("label", { for: unit.id }, t("staff.unit_optional"), unit),
    h("button", { type: "submit", class: "primary" }, t("staff.grant")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    ctx.guarded(status, async () => {
      await ctx.api.post(base(), { account_id: Number(account.value), role: role.value.trim(), unit: unit.value.trim() || null });
      ctx.announce(t("console.done"));
      await load();
    });
  });
  app.addEventListener("change", () => ctx.guarded(status, load));
  clear(
    box,
    h("p", { class: "muted" }, t("staff.help")),
    h("label", { for: app.id }, t("apps.id"), app),
    grants,
    h("section", { class: "card", "aria-label": t("staff.grant") }, h("h3", {}, t("staff.grant")), form),
    status,
  );
  await load();
}
