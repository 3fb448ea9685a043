// The code page: the live Ankang code as a QR, its colour in words, a countdown, and a refresh shortly after
// `refresh_after`. The last code is kept (localStorage) so the page still shows it offline, saying how long
// the terminal will still accept it.

import { h, clear } from "/static/dom.js";
import { t } from "/static/i18n.js";
import { announce, errorText, realNameForm } from "/app/app.js";

const STORE = "yima.app.code";
const RETRY_MS = 2_000; // the server still handed out the previous period's code (clocks a little apart)
const SLACK_MS = 1_000; // ask this long after refresh_after, so the server's clock is past it too

function stored() {
  try {
    return JSON.parse(localStorage.getItem(STORE) || "null");
  } catch {
    return null;
  }
}

/** Server time minus ours, from the Date header (whole seconds; the slack covers the rest). */
function offsetFrom(response) {
  const date = Date.parse(response.headers.get("date") || "");
  return Number.isNaN(date) ? 0 : date - Date.now();
}

function base64(buffer) {
  let text = "";
  for (const byte of new Uint8Array(buffer)) text += String.fromCharCode(byte);
  return btoa(text);
}

async function fetchCode(api) {
  // The PNG (under 1 KB) rather than the SVG (about 20 KB): drawn with crisp pixels at any size, kept offline.
  const [json, png] = await Promise.all([api.fetch("/v1/me/codes/ankang"), api.fetch("/v1/me/codes/ankang.png")]);
  if (!json.ok) {
    const body = await json.json().catch(() => ({}));
    const error = new Error(body.detail || "");
    error.status = json.status;
    error.code = body.code;
    throw error;
  }
  const code = await json.json();
  const image = png.ok ? base64(await png.arrayBuffer()) : null;
  return {
    payload: code.payload,
    color: code.color,
    expiresAt: Date.parse(code.expires_at),
    refreshAfter: Date.parse(code.refresh_after),
    offset: offsetFrom(json),
    image: image ? `data:image/png;base64,${image}` : null,
  };
}

export async function render(root, { api }) {
  const picture = h("img", { id: "qr", alt: "" });
  const frame = h("div", { class: "code-frame" }, picture);
  const colour = h("p", { class: "colour", id: "colour" });
  const countdown = h("p", { class: "muted", id: "countdown" });
  const offline = h("p", { class: "offline", id: "offline", role: "status", hidden: true });
  const problem = h("p", { class: "error", role: "alert" });
  const section = h(
    "section",
    { class: "card code", "aria-labelledby": "code-title" },
    h("h2", { id: "code-title" }, t("code.title")),
    frame,
    colour,
    countdown,
    offline,
    problem,
    h("p", { class: "muted" }, t("code.hint")),
  );
  clear(root, section);

  let current = null;
  let online = true;
  let timer = null;
  let ticker = null;
  let stopped = false;

  const serverNow = () => Date.now() + (current ? current.offset : 0);

  function show(code) {
    current = code;
    if (code.image) {
      picture.src = code.image;
      // The moment the code can be shown to a scanner (tests/bench/bench_app_code_page.py measures up to it).
      if (!performance.getEntriesByName("yima:code-shown").length) {
        picture.decode().then(() => performance.mark("yima:code-shown"), () => {});
      }
    }
    picture.alt = t("code.alt", { colour: t(`colour.${code.color}`) });
    frame.className = `code-frame ${code.color}`;
    colour.className = `colour ${code.color}`;
    colour.textContent = t(`colour.${code.color}`);
    tick();
  }

  function tick() {
    if (!current) return;
    const now = serverNow();
    if (online) {
      const s = Math.max(0, Math.ceil((current.refreshAfter + SLACK_MS - now) / 1000));
      countdown.textContent = t("code.refresh_in", { s });
      offline.hidden = true;
    } else {
      const left = Math.ceil((current.expiresAt - now) / 1000);
      countdown.textContent = "";
      offline.hidden = false;
      if (left > 0) {
        offline.textContent = t("code.offline_valid", { s: left });
      } else {
        offline.textContent = t("code.offline_expired");
        frame.hidden = true;
        colour.textContent = "";
      }
    }
  }

  async function refresh() {
    if (stopped) return;
    try {
      const code = await fetchCode(api);
      if (stopped) return;
      online = true;
      problem.textContent = "";
      frame.hidden = false;
      const fresh = !current || code.payload !== current.payload;
      show(code);
      if (code.image) localStorage.setItem(STORE, JSON.stringify(code));
      if (fresh) announce(t("code.refreshed"));
      const wait = fresh ? code.refreshAfter + SLACK_MS - serverNow() : RETRY_MS;
      timer = setTimeout(refresh, Math.max(wait, RETRY_MS));
    } catch (error) {
      if (stopped) return;
      if (error.code === "identity.required") {
        clear(root, realNameForm(api, () => render(root, { api })));
        return;
      }
      if (error.code === "network.offline" || error.status === 0 || error instanceof TypeError) {
        online = false;
        const last = current || stored();
        if (last && last.expiresAt > Date.now() + (last.offset || 0)) show(last);
        else {
          frame.hidden = true;
          offline.hidden = false;
          offline.textContent = t("code.offline_none");
        }
        tick();
      } else {
        problem.textContent = errorText(error);
      }
      timer = setTimeout(refresh, RETRY_MS * 5);
    }
  }

  const last = stored();
  if (last && last.expiresAt > Date.now() + (last.offset || 0)) show(last);
  ticker = setInterval(tick, 1000);
  await refresh();
  const wake = () => {
    if (document.visibilityState === "visible" && (!online || (current && serverNow() > current.refreshAfter))) {
      clearTimeout(timer);
      refresh();
    }
  };
  document.addEventListener("visibilitychange", wake);
  window.addEventListener("online", wake);
  return () => {
    stopped = true;
    clearTimeout(timer);
    clearInterval(ticker);
    document.removeEventListener("visibilitychange", wake);
    window.removeEventListener("online", wake);
  };
}
