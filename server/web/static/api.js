// The yima JSON API from a page of this origin, with a session kept in localStorage and refreshed silently.
//
//   import { createClient, ApiError } from "/static/api.js";
//   const api = createClient({ storageKey: "yima.app" });     // one session per surface (app, console, terminal)
//   await api.signIn(phone, code);          // POST /v1/auth/token; keeps the access and refresh tokens
//   const me = await api.get("/v1/me");      // JSON in, JSON out; Authorization added when signed in
//   await api.post(path, body, { headers: { "Idempotency-Key": key } });   // also put(), del()
//   const res = await api.fetch(path);       // the raw Response (images, SVG), same auth and refresh
//   api.signedIn(); api.onSignedOut(() => show sign-in); await api.signOut();
//
// Errors: every non-2xx answer throws ApiError { status, code, detail } from the server's problem+json
// (`code` is the stable machine code, e.g. "otp.invalid"); a network failure throws ApiError with status 0 and
// code "network.offline", so pages can fall back to what they stored.
//
// Refresh: an access token about to expire (or refused with 401) is exchanged once for a new pair through
// POST /v1/auth/refresh; concurrent requests share that one exchange (a refresh token is single-use: presenting
// a spent one ends the whole session). When the refresh is refused the session is dropped and onSignedOut fires.

const EARLY_MS = 30_000; // refresh this long before the access token expires

export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail || code);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

export function createClient({ storageKey = "yima.session", storage = globalThis.localStorage } = {}) {
  let refreshing = null;
  const listeners = new Set();

  const load = () => {
    try {
      return JSON.parse(storage.getItem(storageKey) || "null");
    } catch {
      return null;
    }
  };
  const save = (pair) => {
    const session = {
      access: pair.access_token,
      refresh: pair.refresh_token,
      expiresAt: Date.now() + pair.expires_in * 1000,
    };
    storage.setItem(storageKey, JSON.stringify(session));
    return session;
  };
  const drop = () => {
    const had = load() !== null;
    storage.removeItem(storageKey);
    if (had) listeners.forEach((listener) => listener());
  };

  async function send(path, init) {
    let response;
    try {
      response = await fetch(path, init);
    } catch {
      throw new ApiError(0, "network.offline", "offline");
    }
    return response;
  }

  async function problem(response) {
    let body = {};
    try {
      body = await response.json();
    } catch {
      // not problem+json (a proxy's page): the status says enough
    }
    return new ApiError(response.status, body.code || `http.${response.status}`, body.detail || body.title || "");
  }

  async function refresh(spent) {
    if (!refreshing) {
      refreshing = (async () => {
        const current = load();
        if (!current || current.access !== spent) return current; // another tab or request already refreshed
        const response = await send("/v1/auth/refresh", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ refresh_token: current.refresh }),
        });
        if (!response.ok) {
          if (response.status >= 400 && response.status < 500) drop();
          throw await problem(response);
        }
        return save(await response.json());
      })().finally(() => {
        refreshing = null;
      });
    }
    return refreshing;
  }

  async function authorised(path, init = {}) {
    let session = load();
    if (session && session.expiresAt - EARLY_MS < Date.now()) {
      session = await refresh(session.access);
    }
    const withToken = (s) => {
      const headers = new Headers(init.headers || {});
      if (s) headers.set("authorization", `Bearer ${s.access}`);
      return { ...init, headers };
    };
    let response = await send(path, withToken(session));
    if (response.status === 401 && session) {
      session = await refresh(session.access);
      response = await send(path, withToken(session));
      if (response.status === 401) drop();
    }
    return response;
  }

  async function json(method, path, body, { headers = {} } = {}) {
    const init = { method, headers: { accept: "application/json", ...headers } };
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await authorised(path, init);
    if (!response.ok) throw await problem(response);
    if (response.status === 204) return null;
    const text = await response.text();
    return text ? JSON.parse(text) : null;
  }

  return {
    get: (path, options) => json("GET", path, undefined, options),
    post: (path, body, options) => json("POST", path, body, options),
    put: (path, body, options) => json("PUT", path, body, options),
    del: (path, options) => json("DELETE", path, undefined, options),
    fetch: authorised,
    signedIn: () => load() !== null,
    /** The current access token, refreshed first when it is about to expire (for a mini-app host handshake). */
    async token() {
      let session = load();
      if (session && session.expiresAt - EARLY_MS < Date.now()) session = await refresh(session.access);
      return session ? session.access : null;
    },
    async requestCode(phone) {
      return json("POST", "/v1/auth/otp", { phone });
    },
    async signIn(phone, code) {
      const response = await send("/v1/auth/token", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ phone, code }),
      });
      if (!response.ok) throw await problem(response);
      save(await response.json());
    },
    async signOut() {
      try {
        if (load()) await json("POST", "/v1/auth/logout");
      } catch {
        // offline or already ended: forgetting the tokens here is what matters
      } finally {
        drop();
      }
    },
    onSignedOut(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}

/** Under `yima dev` (a page on this machine) the code the console SMS sender "sent", from the dev outbox. */
export async function devCode(phone) {
  if (!["127.0.0.1", "localhost", "[::1]"].includes(location.hostname)) return null;
  try {
    const response = await fetch(`/v1/dev/sms-outbox?phone=${encodeURIComponent(phone)}`);
    const sent = response.ok ? await response.json() : [];
    return sent.length ? sent[sent.length - 1].code : null;
  } catch {
    return null;
  }
}
