// What an offline terminal checks, as yima_sdk does (docs/credentials.md): Base45, the Ankang and ride code
// layouts, mini-app passes (`YP1.`, yima_sdk.passes), the root-signed trust list, revocation deltas and the signed
// server time. Signatures are checked with WebCrypto's Ed25519; the checks, their order and their reason codes
// are the SDK's.

export const ANKANG_PREFIX = "YA:";
export const RIDE_PREFIX = "YR:";
export const PASS_PREFIX = "YP1.";
const MAX_PASS = 4096;
const PASS_FIELDS = ["p", "a", "k", "s", "d", "exp", "kid"];
const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";
const ANKANG_SIZE = 96;
const RIDE_SIZE = 204;
const CERT_SIZE = 132;
const MAX_TEXT = 3 + (RIDE_SIZE / 2) * 3 + 2;
const COLOURS = { 1: "green", 2: "yellow", 3: "red" };
const TIME_CONTEXT = new TextEncoder().encode("yima server time v1\u0000");

export class CredentialError extends Error {
  constructor(code, detail = "") {
    super(detail ? `${code}: ${detail}` : code);
    this.code = code;
  }
}

export class TrustListError extends Error {
  constructor(code, detail = "") {
    super(detail ? `${code}: ${detail}` : code);
    this.code = code;
  }
}

// ---- encodings ------------------------------------------------------------------------------------------

export function base45Decode(text) {
  const size = text.length;
  if (size % 3 === 1) throw new Error("Base45 text length leaves a single dangling character");
  const out = new Uint8Array(Math.floor(size / 3) * 2 + (size % 3 ? 1 : 0));
  let at = 0;
  for (let i = 0; i < size; i += 3) {
    const c = ALPHABET.indexOf(text[i]);
    const d = ALPHABET.indexOf(text[i + 1]);
    const e = i + 2 < size ? ALPHABET.indexOf(text[i + 2]) : 0;
    if (c < 0 || d < 0 || e < 0) throw new Error("character outside the Base45 alphabet");
    if (i + 2 < size) {
      const value = c + 45 * d + 2025 * e;
      if (value > 0xffff) throw new Error("Base45 triplet value exceeds 65535");
      out[at++] = value >> 8;
      out[at++] = value & 0xff;
    } else {
      const value = c + 45 * d;
      if (value > 0xff) throw new Error("Base45 final pair value exceeds 255");
      out[at++] = value;
    }
  }
  return out;
}

export function b64url(bytes) {
  let text = "";
  for (const b of new Uint8Array(bytes)) text += String.fromCharCode(b);
  return btoa(text).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

export function b64urlDecode(text) {
  if (typeof text !== "string" || !/^[A-Za-z0-9_-]*$/.test(text)) throw new Error("not base64url");
  const plain = atob(text.replaceAll("-", "+").replaceAll("_", "/") + "=".repeat((4 - (text.length % 4)) % 4));
  return Uint8Array.from(plain, (ch) => ch.charCodeAt(0));
}

export const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

const uint = (bytes, at, size) => {
  let value = 0;
  for (let i = 0; i < size; i++) value = value * 256 + bytes[at + i];
  return value;
};

// ---- Ed25519 (WebCrypto) --------------------------------------------------------------------------------

const imported = new Map();

async function publicKey(raw) {
  const name = b64url(raw);
  let key = imported.get(name);
  if (key === undefined) {
    key = await crypto.subtle.importKey("raw", raw, { name: "Ed25519" }, false, ["verify"]);
    imported.set(name, key);
  }
  return key;
}

export async function ed25519Verify(rawPublicKey, signature, message) {
  if (rawPublicKey.length !== 32 || signature.length !== 64) return false;
  try {
    return await crypto.subtle.verify({ name: "Ed25519" }, await publicKey(rawPublicKey), signature, message);
  } catch {
    return false; // a key WebCrypto will not import verifies nothing
  }
}

// ---- trust list -----------------------------------------------------------------------------------------

function exactly(object, fields, error) {
  if (object === null || typeof object !== "object" || Array.isArray(object)) throw error("not an object");
  for (const name of Object.keys(object)) if (!fields.includes(name)) throw error(`unknown field ${name}`);
  for (const name of fields) if (!Object.hasOwn(object, name)) throw error(`missing field ${name}`);
}

const malformedList = (detail) => new TrustListError("trust_list.malformed", detail);
const isInt = (v) => Number.isInteger(v);

/** Verify a trust list envelope (its text) against the pinned roots; refuse a rollback from `held`. */
export async function verifyTrustList(envelopeText, roots, held = null) {
  let envelope;
  try {
    envelope = JSON.parse(envelopeText);
  } catch {
    throw malformedList("not JSON");
  }
  exactly(envelope, ["document", "signature", "root_key_id"], malformedList);
  let document, signature;
  try {
    document = b64urlDecode(envelope.document);
    signature = b64urlDecode(envelope.signature);
  } catch {
    throw malformedList("bad base64url");
  }
  const root = roots[envelope.root_key_id];
  if (root === undefined) throw new TrustListError("trust_list.unknown_root", envelope.root_key_id);
  if (!(await ed25519Verify(b64urlDecode(root), signature, document))) {
    throw new TrustListError("trust_list.bad_signature");
  }
  const documentText = new TextDecoder().decode(document);
  let wire;
  try {
    wire = JSON.parse(documentText);
  } catch {
    throw malformedList("document is not JSON");
  }
  exactly(wire, ["version", "issued_at", "entries"], malformedList);
  if (!isInt(wire.version) || wire.version < 1 || !isInt(wire.issued_at) || !Array.isArray(wire.entries)) {
    throw malformedList("bad version, issued_at or entries");
  }
  const fields = ["issuer", "key_id", "alg", "public_key", "credential_types", "not_before", "not_after"];
  const entries = new Map();
  for (const e of wire.entries) {
    exactly(e, fields, malformedList);
    if (!isInt(e.issuer) || e.issuer < 100000 || e.issuer > 999999) throw malformedList("issuer");
    if (typeof e.key_id !== "string" || !/^[0-9a-fA-F]{8}$/.test(e.key_id)) throw malformedList("key_id");
    let key;
    try {
      key = b64urlDecode(e.public_key);
    } catch {
      throw malformedList("public_key");
    }
    if (e.alg === 1 && key.length !== 32) throw malformedList("Ed25519 public key must be 32 bytes");
    if (!isInt(e.not_before) || !isInt(e.not_after) || e.not_after < e.not_before) throw malformedList("window");
    const id = `${e.issuer}/${e.key_id.toLowerCase()}`;
    if (entries.has(id)) throw malformedList("duplicate (issuer, key_id)");
    entries.set(id, { ...e, public_key: key, credential_types: new Set(e.credential_types) });
  }
  if (held && (wire.version < held.version || (wire.version === held.version && documentText !== held.document))) {
    throw new TrustListError("trust_list.rollback");
  }
  return { version: wire.version, issuedAt: wire.issued_at, entries, document: documentText, envelope: envelopeText };
}

/** The server's time (unix ms) from a signed answer to the request that sent `nonce`. */
export async function verifyServerTime(text, roots, nonce) {
  let envelope, statement, signature, signed;
  const malformed = (detail) => new TrustListError("time.malformed", detail);
  try {
    envelope = JSON.parse(text);
    exactly(envelope, ["statement", "signature", "root_key_id"], malformed);
    statement = b64urlDecode(envelope.statement);
    signature = b64urlDecode(envelope.signature);
  } catch (error) {
    throw error instanceof TrustListError ? error : malformed(String(error));
  }
  const root = roots[envelope.root_key_id];
  if (root === undefined) throw new TrustListError("trust_list.unknown_root", envelope.root_key_id);
  const message = new Uint8Array(TIME_CONTEXT.length + statement.length);
  message.set(TIME_CONTEXT);
  message.set(statement, TIME_CONTEXT.length);
  if (!(await ed25519Verify(b64urlDecode(root), signature, message))) throw new TrustListError("time.bad_signature");
  try {
    signed = JSON.parse(new TextDecoder().decode(statement));
  } catch {
    throw malformed("statement is not JSON");
  }
  exactly(signed, ["server_time_ms", "nonce"], malformed);
  if (signed.nonce !== nonce) throw new TrustListError("time.nonce_mismatch");
  return signed.server_time_ms;
}

// ---- revocations ----------------------------------------------------------------------------------------

export class RevocationError extends Error {
  constructor(code, detail = "") {
    super(detail ? `${code}: ${detail}` : code);
    this.code = code;
  }
}

const KIND_NAME = /^[a-z][a-z0-9_]{0,39}$/;
// A Map, not an object: a kind of a newer list is any name, and a plain object finds `constructor` on its prototype.
const REF_SIZE = new Map([
  ["subject", 16],
  ["device_certificate", 8],
  ["app_pass", 8],
]);
/** The `kinds` of `GET /v1/revocations`: what this page applies, so the server sends it those entries (a request
 * naming none gets only the first SDK's kinds, docs/scan.md, Revocation). */
export const REVOCATION_KINDS = [...REF_SIZE.keys()].sort().join(",");
const empty = () => ({ version: 0, subjects: new Set(), certificates: new Set(), passes: new Set(), others: new Map() });

/** The 8-byte big-endian revocation ref of app pass number `number` (yima_sdk.trust.pass_ref), base64url. */
export function passRef(number) {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(number));
  return b64url(bytes);
}

/** Per issuer: the held version, the revoked subject/account refs, certificate serials and app pass numbers
 * (base64url), and, kept aside, the entries of kinds this page does not know (docs/scan.md, Revocation: the list
 * format may grow new kinds; a terminal ignores the kinds it does not know and applies the rest). */
export class RevocationSet {
  constructor(state = {}) {
    this.issuers = new Map();
    for (const [issuer, held] of Object.entries(state)) {
      const next = empty();
      // Lists fetched naming other kinds (or none, as pages did before) lack the entries the server left out,
      // though their version moved past them: start over (since 0).
      next.version = held.kinds === REVOCATION_KINDS ? held.version : 0;
      for (const ref of held.subjects ?? []) next.subjects.add(ref);
      for (const ref of held.certificates ?? []) next.certificates.add(ref);
      for (const ref of held.passes ?? []) next.passes.add(ref);
      for (const [kind, ref] of held.others ?? []) this.#add(next, kind, ref);
      this.issuers.set(Number(issuer), next);
    }
  }

  /** Add one entry; false when its kind is not one this page knows (then it is kept aside). */
  #add(held, kind, ref) {
    if (kind === "subject") held.subjects.add(ref);
    else if (kind === "device_certificate") held.certificates.add(ref);
    else if (kind === "app_pass") held.passes.add(ref);
    else {
      held.others.set(`${kind}/${ref}`, [kind, ref]);
      return false;
    }
    return true;
  }

  /** How many held entries of each kind this page does not know (of every issuer). */
  unknownKinds() {
    const counts = new Map();
    for (const held of this.issuers.values()) {
      for (const [kind] of held.others.values()) counts.set(kind, (counts.get(kind) ?? 0) + 1);
    }
    return Object.fromEntries(counts);
  }

  version(issuer) {
    return this.issuers.get(issuer)?.version ?? 0;
  }

  /** Apply one `GET /v1/revocations` body that answered a request for `issuer`. */
  apply(text, issuer) {
    const malformed = (detail) => new RevocationError("revocation.malformed", detail);
    let delta;
    try {
      delta = JSON.parse(text);
    } catch {
      throw malformed("not JSON");
    }
    exactly(delta, ["issuer", "since", "version", "entries"], malformed);
    if (delta.issuer !== issuer) throw malformed("delta for another issuer");
    if (!isInt(delta.since) || !isInt(delta.version) || delta.version < delta.since) throw malformed("versions");
    const held = this.issuers.get(issuer);
    if (delta.since !== 0 && delta.since !== (held?.version ?? 0)) throw new RevocationError("revocation.gap");
    const next = empty();
    if (delta.since !== 0 && held !== undefined) {
      next.subjects = new Set(held.subjects);
      next.certificates = new Set(held.certificates);
      next.passes = new Set(held.passes);
      next.others = new Map(held.others);
    }
    const skipped = new Map();
    for (const entry of delta.entries) {
      exactly(entry, ["version", "kind", "ref"], malformed);
      if (!isInt(entry.version) || entry.version <= delta.since || entry.version > delta.version) {
        throw malformed("entry version outside the delta");
      }
      let ref;
      try {
        ref = b64urlDecode(entry.ref);
      } catch {
        throw malformed("ref is not base64url");
      }
      // a name first (an array ["subject"] would read as "subject"), then its size when the kind is known
      if (typeof entry.kind !== "string" || !KIND_NAME.test(entry.kind)) throw malformed("bad kind name");
      const size = REF_SIZE.get(entry.kind);
      if (size === undefined && ref.length === 0) throw malformed("empty reference");
      if (size !== undefined && ref.length !== size) throw malformed(`bad ${entry.kind} reference`);
      if (!this.#add(next, entry.kind, entry.ref)) skipped.set(entry.kind, (skipped.get(entry.kind) ?? 0) + 1);
    }
    next.version = delta.version;
    this.issuers.set(issuer, next);
    if (skipped.size > 0) {
      // kind names and counts only: a reference may stand for a resident
      const kinds = [...skipped].map(([kind, count]) => `${kind} x${count}`).join(", ");
      console.warn(`revocation entries of kinds this page does not know were kept aside: ${kinds} (issuer ${issuer})`);
    }
  }

  subjectRevoked(issuer, ref) {
    return this.issuers.get(issuer)?.subjects.has(b64url(ref)) ?? false;
  }

  certificateRevoked(issuer, serial) {
    return this.issuers.get(issuer)?.certificates.has(b64url(serial)) ?? false;
  }

  /** Whether app pass `number`, signed with a key of `issuer`, is revoked (e.g. its ticket cancelled). */
  passRevoked(issuer, number) {
    return this.issuers.get(issuer)?.passes.has(passRef(number)) ?? false;
  }

  toJSON() {
    const out = {};
    for (const [issuer, held] of this.issuers) {
      out[issuer] = {
        version: held.version,
        kinds: REVOCATION_KINDS,
        subjects: [...held.subjects],
        certificates: [...held.certificates],
        passes: [...held.passes],
        others: [...held.others.values()],
      };
    }
    return out;
  }
}

// ---- the verifier ---------------------------------------------------------------------------------------

const malformed = (detail) => new CredentialError("credential.malformed", detail);

/** A `YP1.` pass: its claims (exactly the fields yima_sdk.passes.PassClaims has), the signed bytes, the signature. */
function decodePass(payload) {
  if (payload.length > MAX_PASS) throw malformed("not a YP1 pass");
  const cut = payload.lastIndexOf(".");
  let claims, signature;
  try {
    claims = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(b64urlDecode(payload.slice(PASS_PREFIX.length, cut))));
    signature = b64urlDecode(payload.slice(cut + 1));
    exactly(claims, PASS_FIELDS, malformed);
  } catch {
    throw malformed("the pass does not decode");
  }
  const { p, a, k, s, d, exp, kid } = claims;
  const isObject = d !== null && typeof d === "object" && !Array.isArray(d);
  if (!isInt(p) || !isInt(exp) || typeof a !== "string" || typeof k !== "string" || typeof kid !== "string" || !isObject || (s !== null && typeof s !== "string")) {
    throw malformed("the pass does not decode");
  }
  return { claims, signed: new TextEncoder().encode(payload.slice(0, cut)), signature };
}

function decode(payload) {
  if (typeof payload !== "string" || payload.length > MAX_TEXT) throw malformed("payload too long");
  const prefix = payload.slice(0, 3);
  if (prefix !== ANKANG_PREFIX && prefix !== RIDE_PREFIX) throw malformed("unknown payload prefix");
  let raw;
  try {
    raw = base45Decode(payload.slice(3));
  } catch (error) {
    throw malformed(error.message);
  }
  return prefix === ANKANG_PREFIX ? decodeAnkang(raw) : decodeRide(raw);
}

function decodeAnkang(raw) {
  if (raw.length !== ANKANG_SIZE) throw malformed("Ankang code has the wrong length");
  if (raw[0] !== 0x11) throw malformed("unknown Ankang code version or type");
  if (raw[1] !== 1) throw malformed("unknown signature algorithm");
  const colour = COLOURS[raw[25]];
  if (colour === undefined) throw malformed("unknown status colour");
  const validity = uint(raw, 30, 2);
  if (validity === 0) throw malformed("zero validity");
  return {
    kind: "ankang_code",
    alg: 1,
    issuer: uint(raw, 2, 3),
    keyId: hex(raw.subarray(5, 9)),
    subjectRef: raw.slice(9, 25),
    colour,
    issuedAt: uint(raw, 26, 4),
    validity,
    signed: raw.subarray(0, 32),
    signature: raw.subarray(32, 96),
    replayKey: "A" + hex(raw.subarray(2, 30)),
  };
}

function decodeCertificate(raw, at) {
  if (raw[at] !== 0x12) throw malformed("unknown certificate version or type");
  if (raw[at + 1] !== 1) throw malformed("unknown certificate algorithm");
  const issuedAt = uint(raw, at + 57, 4);
  return {
    alg: 1,
    issuer: uint(raw, at + 2, 3),
    keyId: hex(raw.subarray(at + 5, at + 9)),
    accountRef: raw.slice(at + 9, at + 25),
    deviceKey: raw.slice(at + 25, at + 57),
    issuedAt,
    expiresAt: issuedAt + 3600 * uint(raw, at + 61, 2),
    maxUses: uint(raw, at + 63, 2),
    maxAmount: uint(raw, at + 65, 3),
    signed: raw.slice(at, at + 68),
    signature: raw.slice(at + 68, at + CERT_SIZE),
  };
}

function decodeRide(raw) {
  if (raw.length !== RIDE_SIZE) throw malformed("ride code has the wrong length");
  if (raw[0] !== 0x13) throw malformed("unknown ride code version or type");
  if (raw[1] !== 1) throw malformed("unknown signature algorithm");
  const certificate = decodeCertificate(raw, 2);
  const counter = uint(raw, 138, 2);
  if (counter === 0) throw malformed("ride code counter starts at 1");
  return {
    kind: "ride_code",
    certificate,
    timestamp: uint(raw, 134, 4),
    counter,
    signed: raw.subarray(0, 140),
    signature: raw.subarray(140, RIDE_SIZE),
  };
}

/** Checks Ankang and ride codes and app passes against one trust list, with an explicit clock-skew tolerance.
 * `passIssuer`: the issuer whose `app_pass` keys sign the passes it accepts (a pass names no issuer; a partner
 * county's key never signs one); null: the one issuer with pass keys on the list, none when several have them. */
export class Verifier {
  constructor(trustList, { clockSkewS = 30, rideWindowS = 60, passIssuer = null } = {}) {
    this.trustList = trustList;
    this.skew = clockSkewS;
    this.rideWindow = rideWindowS;
    this.serials = new Map();
    const entries = [...trustList.entries.values()];
    if (passIssuer === null) {
      const holders = new Set(entries.filter((e) => e.credential_types.has("app_pass")).map((e) => e.issuer));
      passIssuer = holders.size === 1 ? [...holders][0] : null;
    }
    this.passKeys = new Map(
      entries
        .filter((e) => e.issuer === passIssuer && e.alg === 1 && e.credential_types.has("app_pass"))
        .map((e) => [e.key_id.toLowerCase(), e]),
    );
  }

  issuerKey(issuer, keyId, alg, type) {
    const entry = this.trustList.entries.get(`${issuer}/${keyId}`);
    if (entry === undefined || entry.alg !== alg || alg !== 1) {
      throw new CredentialError("credential.unknown_key", "issuer key is not on the trust list");
    }
    if (!entry.credential_types.has(type)) throw new CredentialError("credential.unknown_key", `key may not sign ${type}`);
    return entry;
  }

  /** Decode and fully check `payload` at `now` (unix seconds): the verified code, or a CredentialError thrown. */
  async verify(payload, now, revocations = null) {
    if (typeof payload === "string" && payload.startsWith(PASS_PREFIX)) return this.pass(payload, now, revocations);
    const code = decode(payload);
    return code.kind === "ankang_code" ? this.ankang(code, now, revocations) : this.ride(code, now, revocations);
  }

  /** An app pass, as yima_sdk.codes checks it: a pass key of the pass issuer, the signature, the expiry (with the
   * skew), not revoked. What it admits only its app knows: the server asks it when the record is uploaded. */
  async pass(payload, now, revocations) {
    const { claims, signed, signature } = decodePass(payload);
    if (!/^[0-9a-fA-F]{8}$/.test(claims.kid)) throw new CredentialError("credential.unknown_key", "a pass key id is 8 hex digits");
    const key = this.passKeys.get(claims.kid.toLowerCase());
    if (key === undefined) throw new CredentialError("credential.unknown_key", "not a pass key of the pass issuer on the trust list");
    if (!(await ed25519Verify(key.public_key, signature, signed))) throw new CredentialError("credential.bad_signature");
    if (claims.exp + this.skew < now) throw new CredentialError("credential.expired");
    if (revocations?.passRevoked(key.issuer, claims.p)) throw new CredentialError("credential.revoked", "pass revoked");
    return {
      kind: "app_pass",
      issuer: key.issuer,
      colour: null,
      issuedAt: 0,
      expiresAt: claims.exp,
      replayKey: `P${claims.a}:${claims.p}`,
      pass: { appId: claims.a, kind: claims.k, number: claims.p, validUntil: claims.exp },
    };
  }

  async ankang(code, now, revocations) {
    const key = this.issuerKey(code.issuer, code.keyId, code.alg, "ankang_code");
    if (!(await ed25519Verify(key.public_key, code.signature, code.signed))) {
      throw new CredentialError("credential.bad_signature");
    }
    if (code.issuedAt < key.not_before || code.issuedAt > key.not_after) {
      throw new CredentialError("credential.key_not_valid", "issued outside the key's validity window");
    }
    if (code.issuedAt > now + this.skew) throw new CredentialError("credential.not_yet_valid");
    if (now > code.issuedAt + code.validity + this.skew) throw new CredentialError("credential.expired");
    if (revocations?.subjectRevoked(code.issuer, code.subjectRef)) throw new CredentialError("credential.revoked");
    return {
      kind: "ankang_code",
      issuer: code.issuer,
      colour: code.colour,
      issuedAt: code.issuedAt,
      expiresAt: code.issuedAt + code.validity,
      replayKey: code.replayKey,
    };
  }

  async ride(code, now, revocations) {
    const cert = code.certificate;
    const key = this.issuerKey(cert.issuer, cert.keyId, cert.alg, "device_certificate");
    if (!(await ed25519Verify(key.public_key, cert.signature, cert.signed))) {
      throw new CredentialError("credential.bad_signature", "device certificate signature");
    }
    if (cert.issuedAt < key.not_before || cert.issuedAt > key.not_after) {
      throw new CredentialError("credential.key_not_valid", "certificate issued outside the key's window");
    }
    if (!(await ed25519Verify(cert.deviceKey, code.signature, code.signed))) {
      throw new CredentialError("credential.bad_signature", "device signature");
    }
    const skew = this.skew;
    if (cert.issuedAt > now + skew) throw new CredentialError("credential.not_yet_valid", "device certificate not yet valid");
    if (now > cert.expiresAt + skew) throw new CredentialError("credential.device_certificate_expired");
    if (code.timestamp > now + skew) throw new CredentialError("credential.not_yet_valid", "ride timestamp in the future");
    if (code.timestamp < now - this.rideWindow - skew) throw new CredentialError("credential.stale_timestamp");
    if (code.counter > cert.maxUses) {
      throw new CredentialError("credential.offline_limit_exceeded", "use counter past the limit");
    }
    const serial = await this.serial(cert.signed);
    if (revocations?.certificateRevoked(cert.issuer, serial) || revocations?.subjectRevoked(cert.issuer, cert.accountRef)) {
      throw new CredentialError("credential.revoked");
    }
    return {
      kind: "ride_code",
      issuer: cert.issuer,
      colour: null,
      issuedAt: code.timestamp,
      expiresAt: Math.min(cert.expiresAt, Math.floor(code.timestamp + this.rideWindow)),
      replayKey: `R${cert.issuer}:${hex(serial)}:${code.counter}`,
      serial: hex(serial),
      maxAmount: cert.maxAmount,
    };
  }

  async serial(signed) {
    // The first 8 bytes of SHA-256 over the certificate's signed bytes (docs/credentials.md).
    const name = b64url(signed);
    let serial = this.serials.get(name);
    if (serial === undefined) {
      serial = new Uint8Array(await crypto.subtle.digest("SHA-256", signed)).slice(0, 8);
      this.serials.set(name, serial);
    }
    return serial;
  }
}
