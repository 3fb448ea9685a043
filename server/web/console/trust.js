// The trust list as terminals receive it (GET /v1/trust-list, the signed document decoded), and the partner
// counties' issuer keys: add and remove, each publishing a new signed version.

import { clear, h } from "/static/dom.js";
import { t, when } from "/static/i18n.js";

const COUNTIES = { 341822: "广德 Guangde", 341821: "郎溪 Langxi", 330522: "长兴 Changxing", 330523: "安吉 Anji", 320481: "溧阳 Liyang", 320282: "宜兴 Yixing", 310000: "白茅岭 Baimaoling" };

function documentOf(envelope) {
  const text = atob(envelope.document.replaceAll("-", "+").replaceAll("_", "/"));
  return JSON.parse(new TextDecoder().decode(Uint8Array.from(text, (c) => c.charCodeAt(0))));
}

export async function render(box, ctx) {
  const status = h("div", {});
  const listed = h("div", {});
  const load = async () => {
    const [envelope, info] = await Promise.all([ctx.api.get("/v1/trust-list"), ctx.api.get("/v1/trust-list/info")]);
    const doc = documentOf(envelope);
    const ours = Number(Object.keys(COUNTIES)[0]);
    const remove = (entry) =>
      ctx.guarded(status, async () => {
        await ctx.api.del(`/v1/admin/trust-list/partner-keys/${entry.issuer}/${entry.key_id}`);
        ctx.announce(t("console.done"));
        await load();
      });
    clear(
      listed,
      h("p", { class: "notice" }, t("trust.version", { version: doc.version, at: when(doc.issued_at * 1000), root: info.root_key_id })),
      h(
        "table",
        {},
        h("thead", {}, h("tr", {}, [t("trust.issuer"), t("trust.key_id"), t("trust.types"), t("trust.window"), ""].map((x) => h("th", {}, x)))),
        h(
          "tbody",
          {},
          doc.entries.map((e) =>
            h(
              "tr",
              { dataset: { issuer: e.issuer, key: e.key_id } },
              h("td", {}, `${e.issuer} ${COUNTIES[e.issuer] ?? ""}`),
              h("td", {}, h("code", {}, e.key_id)),
              h("td", {}, e.credential_types.join(", ")),
              h("td", {}, `${when(e.not_before * 1000)} – ${when(e.not_after * 1000)}`),
              h("td", {}, e.issuer === ours ? t("trust.ours") : h("button", { type: "button", class: "danger", onclick: () => remove(e) }, t("trust.remove"))),
            ),
          ),
        ),
      ),
    );
  };

  const issuer = h("select", { id: "partner-issuer" }, Object.entries(COUNTIES).slice(1).map(([code, name]) => h("option", { value: code }, `${code} ${name}`)));
  const keyId = h("input", { id: "partner-key-id", required: true, pattern: "[0-9a-fA-F]{8}", size: 10 });
  const publicKey = h("input", { id: "partner-public-key", required: true, size: 46 });
  const notBefore = h("input", { id: "partner-not-before", type: "date", required: true });
  const notAfter = h("input", { id: "partner-not-after", type: "date", required: true });
  const form = h(
    "form",
    { class: "inline" },
    h("label", { for: issuer.id }, t("trust.issuer"), issuer),
    h("label", { for: keyId.id }, t("trust.key_id"), keyId),
    h("label", { for: publicKey.id }, t("trust.public_key"), publicKey),
    h("label", { for: notBefore.id }, t("trust.not_before"), notBefore),
    h("label", { for: notAfter.id }, t("trust.not_after"), notAfter),
    h("button", { type: "submit", class: "primary" }, t("trust.add")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    ctx.guarded(status, async () => {
      await ctx.api.post("/v1/admin/trust-list/partner-keys", {
        issuer: Number(issuer.value),
        key_id: keyId.value.toLowerCase(),
        public_key: publicKey.value.trim(),
        not_before: `${notBefore.value}T00:00:00+08:00`,
        not_after: `${notAfter.value}T00:00:00+08:00`,
      });
      ctx.announce(t("console.done"));
      await load();
    });
  });
  clear(box, listed, h("section", { class: "card" }, h("h3", {}, t("trust.partner_add")), form), status);
  await load();
}
