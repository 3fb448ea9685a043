// A terminal in the browser: enrolment with a one-time code, sign-in with RFC 7523 client assertions signed by
// a key that never leaves the browser, online scans, and offline scans (codes and app passes) decided with the
// synced trust list and revocations and uploaded later, with yima_sdk.terminal's rules (docs/scan.md,
// docs/credentials.md).

import {
  b64url,
  CredentialError,
  REVOCATION_KINDS,
  RevocationSet,
  Verifier,
  verifyServerTime,
  verifyTrustList,
} from "./codes.js";
import * as store from "./store.js";

const SKEW_S = 30;
const RIDE_WINDOW_S = 60;
const REPLAY_WINDOW_S = 5;
const RIDE_MEMORY_S = RIDE_WINDOW_S + 2 * SKEW_S + REPLAY_WINDOW_S;
const UPLOAD_BATCH = 500;
const ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/** The network did not answer (offline, or the server is down): the terminal decides offline instead. */
export class Unreachable extends Error {}

/** The server answered with a problem document. */
export class Refused extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem?.code ?? `http.${status}`;
  }
}

async function call(path, init = {}) {
  let response;
  try {
    response = await fetch(path, { cache: "no-store", ...init });
  } catch (error) {
    throw new Unreachable(String(error));
  }
  if (response.status >= 500 && response.status !== 503) throw new Unreachable(`HTTP ${response.status}`);
  return response;
}

async function refused(response) {
  let problem = null;
  try {
    problem = await response.json();
  } catch {
    /* not a problem document */
  }
  return new Refused(response.status, problem);
}

const utf8 = (text) => new TextEncoder().encode(text);
const b64json = (value) => b64url(utf8(JSON.stringify(value)));
const randomHex = (bytes) => Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, "0")).join("");

export class Terminal {
  constructor(identity) {
    this.identity = identity; // {terminal, roots, passIssuer, privateKey}
    this.token = null;
    this.tokenExpires = 0;
    this.offsetS = 0;
    this.trustList = null;
    this.verifier = null;
    this.revocations = new RevocationSet();
    this.recent = new Map(); // replay key -> {at, decision}
    this.spent = new Map(); // certificate serial -> fen spent offline
  }

  /** The enrolled terminal held in this browser, or null. */
  static async load() {
    const identity = await store.getState("identity");
    if (!identity) return null;
    const terminal = new Terminal(identity);
    terminal.offsetS = (await store.getState("clock_offset_ms")) / 1000 || 0;
    const envelope = await store.getState("trust_list");
    if (envelope) terminal.install(await verifyTrustList(envelope, identity.roots));
    terminal.revocations = new RevocationSet((await store.getState("revocations")) ?? {});
    for (const record of await store.allRecords()) {
      if (record.serial && record.local_result === "accept") {
        terminal.spent.set(record.serial, (terminal.spent.get(record.serial) ?? 0) + record.amount_fen);
      }
    }
    return terminal;
  }

  /** Make a key pair (the private half cannot be exported), register its public half with `code`. */
  static async enrol(code) {
    const keys = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
    const publicKey = b64url(await crypto.subtle.exportKey("raw", keys.publicKey));
    const response = await call("/v1/terminal/enrol", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ code: code.trim(), public_key: publicKey }),
    });
    if (!response.ok) throw await refused(response);
    const answer = await response.json();
    const identity = {
      terminal: answer.terminal,
      roots: answer.root_public_keys,
      passIssuer: answer.pass_issuer ?? null,
      privateKey: keys.privateKey,
    };
    await store.setState("identity", identity);
    return new Terminal(identity);
  }

  get info() {
    return this.identity.terminal;
  }

  now() {
    return Date.now() / 1000 + this.offsetS;
  }

  install(trustList) {
    this.trustList = trustList;
    // The pass issuer the enrolment named (a page enrolled before it did: the one issuer with pass keys on the list).
    const passIssuer = this.identity.passIssuer ?? null;
    this.verifier = new Verifier(trustList, { clockSkewS: SKEW_S, rideWindowS: RIDE_WINDOW_S, passIssuer });
  }

  // ---- signing in --------------------------------------------------------------------------------------

  async assertion() {
    const id = this.info.id;
    const claims = { iss: id, sub: id, aud: this.info.token_endpoint, exp: Math.floor(this.now()) + 60, jti: randomHex(16) };
    const input = `${b64json({ alg: "EdDSA", typ: "JWT" })}.${b64json(claims)}`;
    const signature = await crypto.subtle.sign({ name: "Ed25519" }, this.identity.privateKey, utf8(input));
    return `${input}.${b64url(signature)}`;
  }

  async signIn() {
    try {
      await this.requestToken();
    } catch (error) {
      // A clock far off gets its assertion refused for its time: learn ours without a token, then once more.
      if (!(error instanceof Refused) || error.code !== "terminal.assertion_time") throw error;
      await this.syncPublicTime();
      await this.requestToken();
    }
  }

  async syncPublicTime() {
    const nonce = randomHex(16);
    const sent = Date.now() / 1000;
    const answer = await call(`/v1/terminal/public-time?nonce=${nonce}`);
    if (!answer.ok) throw await refused(answer);
    const serverMs = await verifyServerTime(await answer.text(), this.identity.roots, nonce);
    await this.setOffset(serverMs, sent, Date.now() / 1000);
  }

  setOffset(serverMs, sent, received) {
    this.offsetS = Math.round(serverMs - ((sent + received) / 2) * 1000) / 1000;
    return store.setState("clock_offset_ms", Math.round(this.offsetS * 1000));
  }

  async requestToken() {
    const form = new URLSearchParams({
      grant_type: "client_credentials",
      client_assertion_type: ASSERTION_TYPE,
      client_assertion: await this.assertion(),
    });
    const response = await call("/v1/terminal/token", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: form.toString(),
    });
    if (!response.ok) throw await refused(response);
    const answer = await response.json();
    this.token = answer.access_token;
    // Renewed a little before it expires, so a scan never waits for a refused call first.
    this.tokenExpires = Date.now() / 1000 + answer.expires_in - 30;
  }

  /** A call with the terminal token: signs in when it has none or it expired; once more after a 401. */
  async authorised(path, init = {}) {
    for (let attempt = 0; attempt < 2; attempt++) {
      if (!this.token || Date.now() / 1000 >= this.tokenExpires) await this.signIn();
      const headers = { ...(init.headers ?? {}), authorization: `Bearer ${this.token}` };
      const response = await call(path, { ...init, headers });
      if (response.status !== 401) return response;
      this.token = null;
    }
    throw new Refused(401, { code: "auth.unauthorized" });
  }

  // ---- sync --------------------------------------------------------------------------------------------

  /** Learn the server's signed time, the trust list (by ETag) and every issuer's revocations. */
  async refresh() {
    const nonce = randomHex(16);
    const sent = Date.now() / 1000;
    const timed = await this.authorised(`/v1/terminal/time?nonce=${nonce}&terminal_time=${Math.round(sent * 1000)}`);
    if (!timed.ok) throw await refused(timed);
    const serverMs = await verifyServerTime(await timed.text(), this.identity.roots, nonce);
    await this.setOffset(serverMs, sent, Date.now() / 1000);

    const etag = this.trustList ? await store.getState("trust_list_etag") : null;
    const headers = etag ? { "if-none-match": etag } : {};
    const listed = await call("/v1/trust-list", { headers });
    if (listed.status === 200) {
      const envelope = await listed.text();
      const trustList = await verifyTrustList(envelope, this.identity.roots, this.trustList);
      await store.setState("trust_list", envelope);
      await store.setState("trust_list_etag", listed.headers.get("etag"));
      this.install(trustList);
    } else if (listed.status !== 304) {
      throw await refused(listed);
    }
    const issuers = [...new Set([...this.trustList.entries.values()].map((e) => e.issuer))].sort();
    for (const issuer of issuers) {
      const since = this.revocations.version(issuer);
      const answer = await this.authorised(`/v1/revocations?issuer=${issuer}&since=${since}&kinds=${REVOCATION_KINDS}`);
      if (!answer.ok) throw await refused(answer);
      this.revocations.apply(await answer.text(), issuer);
    }
    await store.setState("revocations", this.revocations.toJSON());
  }

  // ---- scanning ----------------------------------------------------------------------------------------

  /** Online: the server decides (POST /v1/scans). Throws Unreachable when it cannot be asked. */
  async scanOnline(payload) {
    const response = await this.authorised("/v1/scans", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ payload, scanned_at: Math.round(this.now() * 1000) }),
    });
    if (response.status === 503) throw new Unreachable("service unavailable");
    if (!response.ok) throw await refused(response);
    return { mode: "online", ...(await response.json()) };
  }

  /** Offline: decided here with the synced trust list and revocations; answered once its record is stored. */
  async scanOffline(payload, amountFen = 0) {
    if (!this.verifier) throw new CredentialError("terminal.no_trust_list");
    const now = this.now();
    this.forget(now);
    let code = null;
    let result = "accept";
    let reason = null;
    try {
      code = await this.verifier.verify(payload, now, this.revocations);
    } catch (error) {
      if (!(error instanceof CredentialError)) throw error;
      result = "reject";
      reason = error.code;
    }
    if (code !== null) {
      const seen = this.recent.get(code.replayKey);
      if (seen && now - seen.at <= REPLAY_WINDOW_S) return { ...seen.decision, repeat: true };
      if (code.kind === "ride_code") {
        if (seen && seen.decision.result === "accept") {
          result = "reject";
          reason = "credential.replayed";
        } else if ((this.spent.get(code.serial) ?? 0) + amountFen > code.maxAmount) {
          result = "reject";
          reason = "credential.offline_limit_exceeded";
        }
      }
    }
    const record = {
      record_id: crypto.randomUUID(),
      payload,
      scanned_at: Math.round(now * 1000),
      clock_source: "ntp",
      amount_fen: amountFen,
      local_result: result,
      local_reason: reason,
      serial: code?.serial ?? null,
      server_status: null,
      server_reason: null,
    };
    await store.addRecord(record);
    const decision = {
      mode: "offline",
      result,
      reason,
      color: code?.colour ?? null,
      credential_type: code?.kind ?? null,
      record_id: record.record_id,
      expires_at: code ? new Date(code.expiresAt * 1000).toISOString() : null,
      pass: code?.pass ?? null, // an app pass: its app, kind, number and expiry, for the gate keeper
    };
    if (code !== null && reason !== "credential.replayed") this.recent.set(code.replayKey, { at: now, decision });
    if (code?.kind === "ride_code" && result === "accept") {
      this.spent.set(code.serial, (this.spent.get(code.serial) ?? 0) + amountFen);
    }
    return decision;
  }

  forget(now) {
    for (const [key, seen] of this.recent) {
      const keep = key.startsWith("R") && seen.decision.result === "accept" ? RIDE_MEMORY_S : REPLAY_WINDOW_S;
      if (now - seen.at > keep) this.recent.delete(key);
    }
  }

  // ---- upload ------------------------------------------------------------------------------------------

  /** Upload pending offline records until none is left; returns the server's verdicts. */
  async upload() {
    const verdicts = [];
    for (;;) {
      const pending = (await store.pendingRecords()).slice(0, UPLOAD_BATCH);
      if (pending.length === 0) return verdicts;
      const batch = {
        batch_id: crypto.randomUUID(),
        records: pending.map((r) => ({
          record_id: r.record_id,
          payload: r.payload,
          scanned_at: r.scanned_at,
          clock_source: r.clock_source,
          amount_fen: r.amount_fen,
          local_result: r.local_result,
          local_reason: r.local_reason,
        })),
      };
      const response = await this.authorised("/v1/scans/batch", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(batch),
      });
      if (response.status === 503) throw new Unreachable("service unavailable");
      if (!response.ok) throw await refused(response);
      const answer = await response.json();
      const ours = new Set(pending.map((r) => r.record_id));
      const done = answer.results.filter((r) => ours.has(r.record_id)).map((r) => [r.record_id, r.status, r.reason]);
      if (done.length === 0) throw new Refused(502, { code: "scan.nothing_acknowledged" });
      await store.markUploaded(done);
      verdicts.push(...done);
    }
  }

  async pendingCount() {
    return (await store.pendingRecords()).length;
  }
}
