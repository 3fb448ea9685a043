// Mini-apps: the review queue (each manifest beside the running version's) and releases (release, phase,
// revert, rollback, suspend, resume). Every action is a route of /v1/admin/miniapps, audited by the server.

import { clear, h } from "/static/dom.js";
import { t, when } from "/static/i18n.js";

const ADMIN = "/v1/admin/miniapps";

function sideBySide(label, before, after) {
  // Lists and mappings compared item by item: added in green, removed struck through.
  const describe = (value) =>
    Array.isArray(value)
      ? new Map(value.map((v) => [String(v), String(v)]))
      : new Map(Object.entries(value ?? {}).map(([k, v]) => [k, `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`]));
  const old = describe(before);
  const now = describe(after);
  const cell = (items, other, mark) =>
    h(
      "td",
      {},
      [...items].sort(([a], [b]) => a.localeCompare(b)).map(([key, text]) =>
        h("div", { class: other.get(key) === text ? "" : mark }, (other.get(key) === text ? "" : mark === "added" ? "+ " : "− ") + text),
      ),
    );
  return h("tr", {}, h("th", { scope: "row" }, label), cell(old, now, "removed"), cell(now, old, "added"));
}

function reviewCard(item, ctx, refresh) {
  const before = item.previous_manifest ?? {};
  const after = item.manifest;
  const reason = h("input", { name: "reason", required: true, maxlength: 500 });
  const status = h("div", {});
  const decide = (decision) =>
    ctx.guarded(status, async () => {
      if (!reason.value.trim()) {
        reason.reportValidity();
        return;
      }
      await ctx.api.post(`${ADMIN}/${item.app_id}/versions/${item.version}/review`, { decision, reason: reason.value.trim() });
      ctx.announce(t(decision === "approve" ? "reviews.approved" : "reviews.rejected", { app: item.app_id, version: item.version }));
      await refresh();
    });
  return h(
    "section",
    { class: "card", "aria-label": `${item.app_id} ${item.version}` },
    h("h3", {}, `${after.name ?? item.app_id} · ${item.app_id} ${item.version}`),
    h("p", { class: "muted" }, t("reviews.uploaded", { at: when(item.uploaded_at), developer: item.developer_id, size: item.size_bytes })),
    h("h4", {}, t("reviews.checks")),
    h("ul", {}, item.checks.map((c) => h("li", { class: c.ok ? "ok" : "fail" }, `${c.ok ? "✓" : "✗"} ${c.name}${c.detail ? `: ${c.detail}` : ""}`))),
    h("h4", {}, t("reviews.compare")),
    h(
      "table",
      {},
      h(
        "thead",
        {},
        h("tr", {}, h("th", {}, ""), h("th", {}, item.previous_version ? t("reviews.current", { version: item.previous_version }) : t("reviews.first")), h("th", {}, t("reviews.this", { version: item.version }))),
      ),
      h(
        "tbody",
        {},
        sideBySide(t("reviews.capabilities"), before.capabilities ?? [], after.capabilities ?? []),
        sideBySide(t("reviews.scopes"), before.scopes ?? {}, after.scopes ?? {}),
        sideBySide(t("reviews.scenes"), before.scenes ?? [], after.scenes ?? []),
        sideBySide(t("reviews.limits"), before.limits ?? {}, after.limits ?? {}),
      ),
    ),
    h(
      "div",
      { class: "row" },
      h("label", {}, t("reviews.reason"), reason),
      h("button", { type: "button", class: "primary", onclick: () => decide("approve") }, t("reviews.approve")),
      h("button", { type: "button", class: "danger", onclick: () => decide("reject") }, t("reviews.reject")),
    ),
    status,
  );
}

export async function renderReviews(box, ctx) {
  const refresh = async () => {
    const queue = await ctx.api.get(`${ADMIN}/reviews`);
    clear(box, queue.length ? queue.map((item) => reviewCard(item, ctx, refresh)) : h("p", { class: "notice" }, t("reviews.empty")));
  };
  await refresh();
}

const ids = (text) =>
  text
    .split(/[,\s]+/)
    .filter(Boolean)
    .map(Number);

function appDetail(state, ctx, refresh) {
  const status = h("div", {});
  const act = (path, body) =>
    ctx.guarded(status, async () => {
      await ctx.api.post(`${ADMIN}/${state.app_id}${path}`, body);
      ctx.announce(t("console.done"));
      await refresh(state.app_id);
    });
  const approved = state.versions.filter((v) => v.status === "approved" && v.version !== state.stable_version);
  const version = h("select", { name: "version" }, approved.map((v) => h("option", { value: v.version }, v.version)));
  const percent = h("input", { name: "percent", type: "number", min: 0, max: 100, value: state.phased_version ? state.phased_percent : 100 });
  const whitelist = h("input", { name: "whitelist", size: 24 });
  const reason = h("input", { name: "reason", maxlength: 500 });
  const sceneKind = h("select", { name: "kind" }, ["clinic", "pharmacy", "bus", "scenic", "counter"].map((k) => h("option", { value: k }, t(`kind.${k}`))));
  const scene = h("input", { name: "scene", maxlength: 100 });
  const bind = () =>
    ctx.guarded(status, async () => {
      if (!scene.value.trim()) return scene.reportValidity();
      await ctx.api.put(`${ADMIN}/scenes/${sceneKind.value}/${encodeURIComponent(scene.value.trim())}`, { app_id: state.app_id });
      clear(status, h("p", { class: "notice" }, t("apps.bound", { kind: t(`kind.${sceneKind.value}`), scene: scene.value.trim() })));
    });
  return h(
    "div",
    { class: "card" },
    h("h3", {}, `${state.name} · ${state.app_id}`),
    h(
      "table",
      {},
      h("thead", {}, h("tr", {}, h("th", {}, t("apps.version")), h("th", {}, t("apps.status")), h("th", {}, ""))),
      h(
        "tbody",
        {},
        state.versions.map((v) =>
          h(
            "tr",
            {},
            h("td", {}, v.version),
            h("td", {}, v.status + (v.version === state.stable_version ? ` · ${t("apps.stable")}` : "") + (v.version === state.phased_version ? ` · ${t("apps.phased")} ${state.phased_percent}%` : "")),
            h(
              "td",
              {},
              v.released_at && v.version !== state.stable_version
                ? h("button", { type: "button", onclick: () => act("/rollback", { version: v.version }) }, t("apps.rollback"))
                : "",
            ),
          ),
        ),
      ),
    ),
    approved.length
      ? h(
          "div",
          { class: "row" },
          h("label", {}, t("apps.version"), version),
          h("label", {}, t("apps.percent"), percent),
          h("label", {}, t("apps.whitelist"), whitelist),
          h("button", { type: "button", class: "primary", onclick: () => act("/release", { version: version.value, percent: Number(percent.value), whitelist: ids(whitelist.value) }) }, t("apps.release")),
        )
      : "",
    state.phased_version
      ? h(
          "div",
          { class: "row" },
          h("button", { type: "button", onclick: () => act("/release/phase", { percent: Number(percent.value), whitelist: ids(whitelist.value) }) }, t("apps.phase")),
          h("button", { type: "button", class: "danger", onclick: () => act("/release/revert") }, t("apps.revert")),
        )
      : "",
    state.stable_version
      ? h(
          "div",
          { class: "row" },
          h("label", {}, t("terminals.kind"), sceneKind),
          h("label", {}, t("terminals.scene"), scene),
          h("button", { type: "button", onclick: bind }, t("apps.bind")),
        )
      : "",
    h(
      "div",
      { class: "row" },
      state.status === "suspended"
        ? h("button", { type: "button", onclick: () => act("/resume") }, t("apps.resume"))
        : [h("label", {}, t("apps.reason"), reason), h("button", { type: "button", class: "danger", onclick: () => act("/suspend", { reason: reason.value.trim() || "-" }) }, t("apps.suspend"))],
    ),
    status,
  );
}

export async function renderApps(box, ctx) {
  const detail = h("div", {});
  const list = h("div", {});
  const open = async (appId) => {
    await load();
    await ctx.guarded(detail, async () => clear(detail, appDetail(await ctx.api.get(`${ADMIN}/${appId}`), ctx, open)));
  };
  const load = async () => {
    const apps = await ctx.api.get(ADMIN);
    if (!apps.length) return clear(list, h("p", { class: "notice" }, t("apps.empty")));
    clear(
      list,
      h(
        "table",
        {},
        h("thead", {}, h("tr", {}, [t("apps.id"), t("apps.status"), t("apps.stable"), t("apps.phased"), ""].map((x) => h("th", {}, x)))),
        h(
          "tbody",
          {},
          apps.map((a) =>
            h(
              "tr",
              { dataset: { app: a.app_id } },
              h("td", {}, `${a.name} · `, h("code", {}, a.app_id)),
              h("td", {}, a.status === "active" ? t("apps.active") : t("apps.suspended", { reason: a.suspended_reason ?? "" })),
              h("td", {}, a.stable_version ?? "—"),
              h("td", {}, a.phased_version ? `${a.phased_version} (${a.phased_percent}%)` : "—"),
              h("td", {}, h("button", { type: "button", onclick: () => open(a.app_id), "aria-label": `${t("apps.manage")} ${a.app_id}` }, t("apps.manage"))),
            ),
          ),
        ),
      ),
    );
  };
  clear(box, list, detail);
  await load();
}
