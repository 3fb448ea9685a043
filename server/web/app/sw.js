// The shell's service worker: the shell's own files come from this cache when it holds them, and are refreshed
// from the network behind the answer (a release reaches a phone at its next visit), so the code page opens at
// once on a slow network, and offline, and shows the last valid code (which the page keeps itself). API calls
// are never cached: they carry personal data.

const CACHE = "yima-shell-v1";
const SHELL = [
  "/app/",
  "/app/app.js",
  "/app/app.css",
  "/app/code.js",
  "/app/card.js",
  "/app/records.js",
  "/app/apps.js",
  "/app/messages.js",
  "/app/manifest.json",
  "/app/icon.svg",
  "/static/base.css",
  "/static/api.js",
  "/static/dom.js",
  "/static/i18n.js",
  "/static/miniapp-host.js",
];

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(SHELL))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((name) => name !== CACHE).map((name) => caches.delete(name))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  const shell = url.origin === location.origin && (url.pathname.startsWith("/app/") || url.pathname.startsWith("/static/"));
  if (event.request.method !== "GET" || !shell) return;
  // Stale while revalidating: a kept copy answers at once (a slow network never delays the code page), and the
  // network's answer replaces it for the next visit; without a copy, the network, then the shell's page.
  const fresh = fetch(event.request).then((response) => {
    if (response.ok) {
      const copy = response.clone();
      caches.open(CACHE).then((cache) => cache.put(event.request, copy));
    }
    return response;
  });
  event.respondWith(
    caches.match(event.request, { ignoreSearch: true }).then((kept) => {
      if (kept) {
        event.waitUntil(fresh.catch(() => undefined));
        return kept;
      }
      return fresh.catch(() =>
        event.request.mode === "navigate"
          ? caches.match("/app/").then((page) => page || Response.error())
          : Response.error(),
      );
    }),
  );
});
