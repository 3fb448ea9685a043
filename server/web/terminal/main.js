// The terminal page: enrol, sync, scan (pasted text or the camera), decide online or offline, upload later.

import { CredentialError } from "./codes.js";
import { language, onLanguage, setLanguage, t, translate } from "/static/i18n.js";
import "./messages.js";
import * as store from "./store.js";
import { Refused, Terminal, Unreachable } from "./terminal.js";

const $ = (id) => document.getElementById(id);
/** A stable reason code in words (the code itself when it has none). */
const reason = (code) => (t(`reason.${code}`) === `reason.${code}` ? code : t(`reason.${code}`));
const locale = () => (language() === "en" ? "en" : "zh-CN");
let terminal = null;
let reachable = navigator.onLine;
let lastDecision = null;

function showError(error) {
  const box = $("error");
  if (!error) {
    box.hidden = true;
    return;
  }
  const code = error instanceof Refused || error instanceof CredentialError ? error.code : null;
  box.textContent = t("terminal.error", { error: code ? `${reason(code)} (${code})` : String(error.message ?? error) });
  box.hidden = false;
}

function setReachable(value) {
  reachable = value;
  const badge = $("network");
  badge.textContent = value ? t("terminal.online") : t("terminal.offline");
  badge.classList.toggle("offline", !value);
}

function render() {
  translate();
  document.title = t("terminal.title");
  $("language").textContent = t("terminal.language");
  setReachable(reachable);
  $("enrol").hidden = terminal !== null;
  $("terminal").hidden = terminal === null;
  if (terminal === null) return;
  const info = terminal.info;
  $("identity").textContent = `${t("terminal.enrolled")}: ${info.name} · ${t(`terminal.kind.${info.kind}`)} · ${info.scene} · ${info.id}`;
  $("amount-field").hidden = info.kind !== "bus" && info.kind !== "pharmacy";
  const skipped = Object.entries(terminal.revocations.unknownKinds());
  $("sync-state").textContent =
    (terminal.trustList
      ? t("terminal.synced", { version: terminal.trustList.version, offset: Math.round(terminal.offsetS * 1000) })
      : t("terminal.not_synced")) +
    (skipped.length ? ` · ${t("terminal.kinds_skipped", { kinds: skipped.map(([k, n]) => `${k} ×${n}`).join(", ") })}` : "");
  if (lastDecision) showDecision(lastDecision);
  renderRecords();
}

function showDecision(decision) {
  lastDecision = decision;
  const box = $("decision");
  box.hidden = false;
  // A valid code the bound app refused (`miniapp.admit` false: no ticket today, 一码乘车 never opened) keeps the
  // gate shut: shown as a refusal with the app's lines, not as the code's "accept".
  const refusedByApp = decision.result === "accept" && decision.miniapp?.admit === false;
  const verdict = refusedByApp ? "app_refused" : decision.result;
  box.className = `decision ${verdict === "accept" ? decision.color ?? "" : "rejected"}`;
  box.dataset.result = verdict;
  $("decision-result").textContent = t(`terminal.${verdict}`) + (decision.repeat ? ` · ${t("terminal.repeat")}` : "");
  $("decision-colour").textContent = decision.color ? t(`terminal.colour.${decision.color}`) : "";
  $("decision-name").textContent = decision.name ?? "";
  $("decision-reason").textContent = decision.reason ? `${reason(decision.reason)} (${decision.reason})` : "";
  const lines = $("decision-lines");
  lines.replaceChildren();
  const line = (text) => lines.append(Object.assign(document.createElement("li"), { textContent: text }));
  const held = decision.pass; // an app pass decided here: what it says, for the gate keeper
  if (held) {
    line(t("terminal.pass.what", { kind: held.kind, number: held.number }));
    line(t("terminal.pass.app", { app: held.appId }));
    line(t("terminal.pass.valid_until", { time: new Date(held.validUntil * 1000).toLocaleString(locale()) }));
    if (decision.result === "accept") line(t("terminal.pass.app_decides"));
  }
  const app = decision.miniapp;
  for (const line of app?.lines ?? []) lines.append(Object.assign(document.createElement("li"), { textContent: line }));
  if (app?.missing) lines.append(Object.assign(document.createElement("li"), { textContent: t("terminal.app_missing") }));
  $("decision-mode").textContent = decision.mode === "online" ? t("terminal.mode_online") : t("terminal.mode_offline");
}

async function renderRecords() {
  const records = (await store.allRecords()).sort((a, b) => b.scanned_at - a.scanned_at).slice(0, 50);
  const pending = records.filter((r) => r.server_status === null).length;
  $("pending").textContent = t("terminal.pending", { count: pending });
  $("upload").disabled = pending === 0;
  $("records").replaceChildren(
    ...records.map((r) => {
      const item = document.createElement("li");
      item.dataset.recordId = r.record_id;
      item.dataset.status = r.server_status ?? "pending";
      const local = `${new Date(r.scanned_at).toLocaleTimeString(locale())} · ${t(`terminal.${r.local_result}`)}`;
      const server = t(`terminal.verdict.${r.server_status}`) + (r.server_reason ? ` (${reason(r.server_reason)})` : "");
      item.textContent = `${local}${r.local_reason ? ` (${reason(r.local_reason)})` : ""} → ${server}`;
      return item;
    }),
  );
}

/** Sign in, sync the clock, trust list and revocations, then upload what waited; Unreachable leaves it offline. */
async function connect() {
  try {
    await terminal.refresh();
    setReachable(true);
    if ((await terminal.pendingCount()) > 0 && !$("offline-mode").checked) await upload();
    showError(null);
  } catch (error) {
    if (error instanceof Unreachable) setReachable(false);
    else showError(error);
  }
  render();
}

async function upload() {
  try {
    const verdicts = await terminal.upload();
    setReachable(true);
    showError(null);
    return verdicts;
  } catch (error) {
    if (error instanceof Unreachable) setReachable(false);
    else showError(error);
    return [];
  } finally {
    renderRecords();
  }
}

async function scan(payload) {
  const amount = $("amount-field").hidden ? 0 : Number($("amount").value || 0);
  let decision = null;
  if (!$("offline-mode").checked) {
    try {
      decision = await terminal.scanOnline(payload);
      setReachable(true);
    } catch (error) {
      if (!(error instanceof Unreachable)) throw error;
      setReachable(false); // the network failed: decide here, as a terminal without a line does
    }
  }
  decision ??= await terminal.scanOffline(payload, amount);
  showDecision(decision);
  renderRecords();
}

// ---- camera -----------------------------------------------------------------------------------------------

let stream = null;

async function startCamera() {
  const video = $("video");
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
  } catch (error) {
    showError(new Error(t("terminal.camera_denied", { error: error.message })));
    return;
  }
  video.srcObject = stream;
  video.hidden = false;
  await video.play();
  $("camera").textContent = t("terminal.camera_stop");
  const canvas = document.createElement("canvas");
  const context = canvas.getContext("2d", { willReadFrequently: true });
  const look = async () => {
    if (stream === null) return;
    if (video.videoWidth > 0) {
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
      context.drawImage(video, 0, 0);
      const image = context.getImageData(0, 0, canvas.width, canvas.height);
      const found = window.jsQR(image.data, image.width, image.height, { inversionAttempts: "dontInvert" });
      if (found && found.data) {
        stopCamera();
        $("payload").value = found.data;
        await guarded(() => scan(found.data));
        return;
      }
    }
    setTimeout(look, 150); // ~6 frames a second is plenty for a code held still, and spares the CPU
  };
  look();
}

function stopCamera() {
  if (stream !== null) for (const track of stream.getTracks()) track.stop();
  stream = null;
  $("video").hidden = true;
  $("camera").textContent = t("terminal.camera_start");
}

// ---- wiring -----------------------------------------------------------------------------------------------

async function guarded(work) {
  try {
    showError(null);
    await work();
  } catch (error) {
    showError(error);
  }
}

$("language").addEventListener("click", () => setLanguage(language() === "en" ? "zh" : "en"));
onLanguage(render);

$("enrol-form").addEventListener("submit", (event) => {
  event.preventDefault();
  guarded(async () => {
    terminal = await Terminal.enrol($("enrol-code").value);
    render();
    await connect();
  });
});

$("scan-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const payload = $("payload").value.trim();
  if (payload) guarded(() => scan(payload));
});

$("sync").addEventListener("click", () => guarded(connect));
$("upload").addEventListener("click", () => guarded(upload));
$("camera").addEventListener("click", () => (stream ? stopCamera() : guarded(startCamera)));
$("offline-mode").addEventListener("change", () => {
  if (!$("offline-mode").checked) guarded(connect);
});
$("forget").addEventListener("click", () =>
  guarded(async () => {
    if (!window.confirm(t("terminal.forget_confirm"))) return;
    await store.wipe();
    terminal = null;
    lastDecision = null;
    $("decision").hidden = true;
    render();
  }),
);
// Back on the line: upload what was scanned offline (the server answers each record's verdict).
window.addEventListener("online", () => terminal && !$("offline-mode").checked && guarded(connect));
window.addEventListener("offline", () => setReachable(false));

terminal = await Terminal.load();
render();
if (terminal !== null) connect();
