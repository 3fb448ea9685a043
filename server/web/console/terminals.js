// Terminals: one-time enrolment codes for the terminal page, registration with a key pair made here (the private
// key shown once, in the demo key file's format), the list with the last clock sync, disable and enable.

import { clear, h } from "/static/dom.js";
import { t, when } from "/static/i18n.js";

const KINDS = ["clinic", "pharmacy", "bus", "scenic", "counter"];

const b64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes))).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");

function fields(prefix) {
  const name = h("input", { id: `${prefix}-name`, name: "name", required: true, maxlength: 100 });
  const kind = h("select", { id: `${prefix}-kind`, name: "kind" }, KINDS.map((k) => h("option", { value: k }, t(`kind.${k}`))));
  const scene = h("input", { id: `${prefix}-scene`, name: "scene", required: true, maxlength: 100 });
  const unit = h("input", { id: `${prefix}-unit`, name: "unit", maxlength: 100, placeholder: "clinic:guangde-people-1" });
  const labels = [
    h("label", { for: name.id }, t("terminals.name"), name),
    h("label", { for: kind.id }, t("terminals.kind"), kind),
    h("label", { for: scene.id }, t("terminals.scene"), scene),
    h("label", { for: unit.id }, t("terminals.unit"), unit),
  ];
  return {
    labels,
    values: () => ({ name: name.value.trim(), kind: kind.value, scene: scene.value.trim(), unit: unit.value.trim() || null }),
  };
}

export async function render(box, ctx) {
  const list = h("div", {});

  const enrol = fields("enrol");
  const enrolled = h("div", { role: "status" });
  const enrolForm = h("form", { class: "inline" }, enrol.labels, h("button", { type: "submit", class: "primary" }, t("terminals.enrol")));
  enrolForm.addEventListener("submit", (event) => {
    event.preventDefault();
    ctx.guarded(enrolled, async () => {
      const made = await ctx.api.post("/v1/admin/terminal-enrolments", enrol.values());
      clear(
        enrolled,
        h("p", { class: "secret" }, t("terminals.code_label"), " ", h("strong", { class: "mono", id: "enrolment-code" }, made.code), " ", t("terminals.code_valid", { expires: when(made.expires_at) })),
      );
    });
  });

  const register = fields("register");
  const registered = h("div", { role: "status" });
  const registerForm = h("form", { class: "inline" }, register.labels, h("button", { type: "submit" }, t("terminals.register")));
  registerForm.addEventListener("submit", (event) => {
    event.preventDefault();
    ctx.guarded(registered, async () => {
      const keys = await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]);
      const publicKey = b64url(await crypto.subtle.exportKey("raw", keys.publicKey));
      const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", keys.privateKey));
      const terminal = await ctx.api.post("/v1/admin/terminals", { ...register.values(), public_key: publicKey });
      // The raw 32-byte seed ends the PKCS #8 structure; shown as the demo terminal's key file holds it.
      const keyFile = { terminal_id: terminal.id, private_key: b64url(pkcs8.slice(-32)), token_endpoint: terminal.token_endpoint };
      clear(registered, h("div", { class: "secret" }, h("p", {}, t("terminals.private_key", { id: terminal.id })), h("pre", { class: "mono" }, JSON.stringify(keyFile, null, 2))));
      await load();
    });
  });

  const load = async () => {
    const terminals = await ctx.api.get("/v1/admin/terminals");
    const toggle = (terminal) =>
      ctx.guarded(list, async () => {
        await ctx.api.post(`/v1/admin/terminals/${terminal.id}/${terminal.enabled ? "disable" : "enable"}`);
        ctx.announce(t("console.done"));
        await load();
      });
    clear(
      list,
      h(
        "table",
        {},
        h("thead", {}, h("tr", {}, [t("terminals.name"), t("terminals.kind"), t("terminals.scene"), "id", t("terminals.last_seen"), ""].map((x) => h("th", {}, x)))),
        h(
          "tbody",
          {},
          terminals.map((x) =>
            h(
              "tr",
              { dataset: { terminal: x.id } },
              h("td", {}, x.name),
              h("td", {}, t(`kind.${x.kind}`)),
              h("td", {}, x.scene, x.unit ? h("div", { class: "muted" }, x.unit) : ""),
              h("td", {}, h("code", {}, x.id)),
              h(
                "td",
                {},
                x.last_signed_in_at ? when(x.last_signed_in_at) : t("terminals.never"),
                x.clock_checked_at ? h("div", { class: "muted" }, t("terminals.offset", { ms: x.clock_offset_ms })) : "",
              ),
              h(
                "td",
                {},
                h("span", { class: x.enabled ? "ok" : "fail" }, x.enabled ? t("terminals.enabled") : t("terminals.disabled")),
                " ",
                h("button", { type: "button", class: x.enabled ? "danger" : "", onclick: () => toggle(x) }, x.enabled ? t("terminals.disable") : t("terminals.enable")),
              ),
            ),
          ),
        ),
      ),
    );
  };

  clear(
    box,
    h("section", { class: "card", "aria-label": t("terminals.enrol") }, h("h3", {}, t("terminals.enrol")), h("p", { class: "muted" }, t("terminals.enrol_help")), enrolForm, enrolled),
    h("section", { class: "card", "aria-label": t("terminals.register") }, h("h3", {}, t("terminals.register")), h("p", { class: "muted" }, t("terminals.register_help")), registerForm, registered),
    h("h3", {}, t("terminals.list")),
    list,
  );
  await load();
}
