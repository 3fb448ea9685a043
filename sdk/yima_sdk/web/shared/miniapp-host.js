/**
 * miniapp-host.js: the shell's side of a mini-app page (yima.js is the page's side). ES module.
 *
 *     import { openMiniapp } from "/static/miniapp-host.js";
 *
 *     const opened = openMiniapp(container, "gov.guangde.bus", {
 *       version: entry.version,          // optional: the catalog's version for this resident (phased release);
 *                                        // open only entries that have a `page` (the app has a ui/)
 *       title: entry.name,               // the frame's accessible name
 *       getToken: async () => access,    // the resident's access token; used here, never given to the page
 *       onConsent: async ({ appId, appName, scope, purpose, scopes }) => true | false | null,
 *       onPayment: async (payment) => true | false | null,   // payment: {id, app_id, amount_fen, reason, ...,
 *                                                             //           appId, appName}
 *       onShowCode: async ({ appId }) => {},
 *       onShowPass: async ({ appId, image, payload }) => {},   // image: a PNG data: URL of the pass's QR code
 *     });
 *     opened.frame;    // the <iframe> appended to `container`
 *     opened.close();  // removes it and stops answering it
 *
 * The page runs in `<iframe sandbox="allow-scripts">` (no allow-same-origin: an opaque origin, so none of the
 * shell's storage or cookies) served from /miniapps/{appId}/ui/ under a policy that lets it reach only its own
 * app's gateway. Only messages whose `event.source` is this frame's window and whose origin is opaque ("null")
 * are answered. The page may ask for:
 *
 *   session    -> {app_id, token, expires_in, user_id}: an app session (POST /v1/me/miniapps/{id}/session),
 *                 reused while it has over a minute left unless the page asks {renew: true} (it was refused)
 *   consent    -> {granted}: a scope the app declares (`scopes` = [{name, purpose}] of that one scope). onConsent
 *                 is called only when the resident has not decided yet (a refusal stays a refusal: no prompt
 *                 loop); the host records true or false (PUT /v1/me/consents/...); null = dismissed, nothing
 *                 recorded, the page hears false. Without onConsent the page hears false.
 *   payment    -> the payment ({id: "pay_<n>" as the app knows it, or <n>}): one of THIS app's payments waiting for confirmation (another app's id is
 *                 payment.not_found). onPayment resolves true (the host confirms), false (the host declines),
 *                 null (left pending), or the payment object when the shell confirmed or declined it itself.
 *                 Without onPayment it stays pending.
 *   show_code  -> {}: onShowCode shows the resident's code.
 *   show_pass  -> {}: one of THIS app's passes held by this resident ({payload: "YP1...."}), checked and drawn
 *                 by the core (POST /v1/me/miniapps/{id}/passes/qr: signed by the platform, issued by this app,
 *                 not expired or revoked, held by the resident; else pass.invalid or pass.not_found), then
 *                 onShowPass shows the QR image. Without onShowPass: shell.unsupported.
 *
 * Prompts are drawn by the shell, one at a time per frame; the page can neither draw nor answer them.
 * Failures reach the page as {code, detail, status} (the API's problem codes, or "shell.*").
 */

const MESSAGE_VERSION = 1;

class HostError extends Error {
  constructor(code, detail, status = 0) {
    super(`${code}: ${detail}`);
    this.code = code;
    this.detail = detail;
    this.status = status;
  }
}

/** The page's address: the released bundle, or the named live version's. */
export function miniappPageUrl(appId, version) {
  const app = encodeURIComponent(appId);
  return version ? `/miniapps/${app}/versions/${encodeURIComponent(version)}/ui/` : `/miniapps/${app}/ui/`;
}

export function openMiniapp(container, appId, options = {}) {
  const { version, title, getToken, onConsent, onPayment, onShowCode, onShowPass } = options;
  if (typeof getToken !== "function") throw new TypeError("openMiniapp needs options.getToken");

  const frame = document.createElement("iframe");
  frame.setAttribute("sandbox", "allow-scripts");
  frame.setAttribute("referrerpolicy", "no-referrer");
  frame.setAttribute("allow", "");
  frame.title = title || appId;
  frame.src = miniappPageUrl(appId, version);

  async function api(method, path, body, accept = "application/json") {
    const token = await getToken();
    const response = await fetch(path, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        accept,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
    if (response.ok && accept !== "application/json") return response.blob();
    const answer = response.status === 204 ? null : await response.json().catch(() => null);
    if (!response.ok) {
      throw new HostError(answer?.code || `http.${response.status}`, answer?.detail || answer?.title || "", response.status);
    }
    return answer;
  }

  const app = encodeURIComponent(appId);

  async function catalogEntry() {
    const entry = (await api("GET", "/v1/miniapps")).find((e) => e.app_id === appId);
    if (!entry) throw new HostError("miniapp.unavailable", "this mini-app is not available to you", 404);
    return entry;
  }

  // One app session at a time, reused while it has more than a minute left: a page that asks in a loop costs
  // the server nothing more.
  let current = null;
  async function session({ renew }) {
    if (current && !renew && current.until - Date.now() > 60_000) return current.answer;
    const answer = await api("POST", `/v1/me/miniapps/${app}/session`);
    current = { answer, until: Date.now() + answer.expires_in * 1000 };
    return answer;
  }

  async function consent({ scope }) {
    const entry = await catalogEntry();
    const wanted = (entry.scopes || []).find((s) => s.name === scope);
    if (!wanted) throw new HostError("consent.unknown_scope", `the app does not ask for ${scope}`, 422);
    if (wanted.state !== "not_asked") return { granted: wanted.state === "granted" };
    const asked = { appId, appName: entry.name, scope, purpose: wanted.purpose };
    const decision = onConsent ? await onConsent({ ...asked, scopes: [{ name: scope, purpose: wanted.purpose }] }) : false;
    if (decision !== true && decision !== false) return { granted: false }; // dismissed: nothing recorded
    await api("PUT", `/v1/me/consents/${app}/${encodeURIComponent(scope)}`, { granted: decision });
    return { granted: decision };
  }

  async function payment({ id }) {
    // The app knows the charge as "pay_<n>" (ctx.payments.charge), the resident's API as <n>.
    const number = Number(String(id).replace(/^pay_/, ""));
    const payments = await api("GET", "/v1/me/payments");
    // Only this app's own payments: a page must not get the shell to confirm another app's charge.
    const found = payments.find((p) => p.id === number && p.app_id === appId);
    if (!found) throw new HostError("payment.not_found", "no such payment of this mini-app", 404);
    if (found.status !== "pending_confirmation" || !onPayment) return found;
    const entry = await catalogEntry();
    const decision = await onPayment({ ...found, appId, appName: entry.name });
    if (decision === true) return api("POST", `/v1/me/payments/${found.id}/confirm`);
    if (decision === false) return api("POST", `/v1/me/payments/${found.id}/decline`);
    if (decision && decision.id === found.id && decision.app_id === appId) return decision; // decided by the shell
    return found;
  }

  async function showCode() {
    if (onShowCode) await onShowCode({ appId });
    return {};
  }

  async function showPass({ payload }) {
    if (!onShowPass) throw new HostError("shell.unsupported", "this shell does not show passes", 501);
    // The core checks the pass is this app's own and the resident's before drawing it: the page only names it.
    const png = await api("POST", `/v1/me/miniapps/${app}/passes/qr`, { payload: String(payload ?? "") }, "image/png");
    const image = await new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.onerror = () => reject(new HostError("shell.failed", "could not read the pass image"));
      reader.readAsDataURL(png);
    });
    await onShowPass({ appId, image, payload: String(payload) });
    return {};
  }

  const handlers = { session, consent, payment, show_code: showCode, show_pass: showPass };
  let prompts = Promise.resolve(); // one prompt at a time: a page cannot stack dialogs on the resident

  function reply(target, id, ok, value) {
    // The frame's origin is opaque and cannot be named: the target is pinned by `event.source` instead.
    target.postMessage({ yima: MESSAGE_VERSION, id, ok, ...(ok ? { result: value } : { error: value }) }, "*");
  }

  function onMessage(event) {
    if (event.source !== frame.contentWindow || event.origin !== "null") return;
    const message = event.data;
    if (!message || message.yima !== MESSAGE_VERSION || !Number.isInteger(message.id)) return;
    const handler = Object.hasOwn(handlers, message.type) ? handlers[message.type] : null;
    const target = event.source;
    if (!handler) {
      reply(target, message.id, false, { code: "shell.unknown_request", detail: String(message.type), status: 400 });
      return;
    }
    const data = message.data && typeof message.data === "object" ? message.data : {};
    const run = message.type === "session" ? handler(data) : (prompts = prompts.then(() => handler(data), () => handler(data)));
    run.then(
      (result) => reply(target, message.id, true, result),
      (error) =>
        reply(target, message.id, false, {
          code: error.code || "shell.failed",
          detail: error.detail || String(error.message || error),
          status: error.status || 0,
        })
    );
  }

  window.addEventListener("message", onMessage);
  container.appendChild(frame);
  return {
    frame,
    close() {
      window.removeEventListener("message", onMessage);
      frame.remove();
    },
  };
}
