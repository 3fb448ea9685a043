/*
 * yima.js: the page side of a yima mini-app (docs/sdk.md "The app's page"). Load it with a classic script tag
 * before your own script:
 *
 *     <script src="/static/yima.js"></script>
 *     <script src="app.js" defer></script>
 *
 * The page runs in the resident shell's sandboxed iframe with an opaque origin, so it has no cookies, no storage
 * of the shell, and may connect only to its own app's gateway. It gets an app-scoped session by asking the shell
 * (postMessage; the shell answers with a short-lived token valid on this app's gateway only), then:
 *
 *     yima.ready()                -> {appId, userId}      the session is open (userId: your app's id for the resident)
 *     yima.call(path, {method, body, query})  -> the answer's JSON (null for 204); throws yima.YimaError
 *     yima.requestConsent(scope)  -> true | false         the shell asks the resident (once: a refusal stays "false")
 *     yima.confirmPayment(id)     -> the payment          the shell asks the resident to confirm the charge whose id
 *                                                         ctx.payments.charge returned (e.g. "pay_42")
 *     yima.showCode()             -> undefined            the shell shows the resident's code
 *     yima.showPass(payload)      -> undefined            the shell shows one of YOUR app's passes held by this
 *                                                         resident ("YP1....", as issue_pass returned it) as a
 *                                                         QR code, full-screen; another app's pass, another
 *                                                         resident's or a forged one: pass.not_found / pass.invalid
 *
 * A YimaError has `code` (the gateway's or the app's stable code, e.g. "consent.denied"), `status` and `detail`.
 * Classic script, not a module: a module script from an opaque origin would need CORS for every file.
 */
(function () {
  "use strict";

  var script = document.currentScript;
  var SHELL = new URL(script ? script.src : "/", location.href).origin; // the core serves this file and the shell

  function YimaError(code, detail, status, problem) {
    var error = new Error(code + ": " + (detail || ""));
    error.name = "YimaError";
    error.code = code;
    error.detail = detail || "";
    error.status = status || 0;
    error.problem = problem || null;
    Object.setPrototypeOf(error, YimaError.prototype);
    return error;
  }
  YimaError.prototype = Object.create(Error.prototype);
  YimaError.prototype.constructor = YimaError;

  var waiting = new Map();
  var nextId = 1;

  // Only the shell, the frame's parent on the core's origin, is listened to.
  window.addEventListener("message", function (event) {
    if (event.source !== window.parent || event.origin !== SHELL) return;
    var message = event.data;
    if (!message || message.yima !== 1 || !waiting.has(message.id)) return;
    var pending = waiting.get(message.id);
    waiting.delete(message.id);
    if (message.ok) {
      pending.resolve(message.result);
    } else {
      var error = message.error || {};
      pending.reject(YimaError(error.code || "shell.failed", error.detail, error.status));
    }
  });

  function ask(type, data) {
    if (window.parent === window) {
      return Promise.reject(YimaError("shell.missing", "open this page from the yima app (it runs in the shell's frame)"));
    }
    return new Promise(function (resolve, reject) {
      var id = nextId++;
      waiting.set(id, { resolve: resolve, reject: reject });
      window.parent.postMessage({ yima: 1, id: id, type: type, data: data || {} }, SHELL);
    });
  }

  var session = null;

  function open(renew) {
    if (session === null || renew) {
      session = ask("session", { renew: Boolean(renew) }).then(
        function (result) {
          return { appId: result.app_id, userId: result.user_id, token: result.token };
        },
        function (error) {
          session = null; // the next call asks again
          throw error;
        }
      );
    }
    return session;
  }

  function ready() {
    return open(false).then(function (s) {
      return { appId: s.appId, userId: s.userId };
    });
  }

  function url(appId, path, query) {
    var target = SHELL + "/v1/miniapps/" + encodeURIComponent(appId) + "/api/" + String(path).replace(/^\/+/, "");
    if (query) {
      var search = new URLSearchParams(query).toString();
      if (search) target += (target.indexOf("?") < 0 ? "?" : "&") + search;
    }
    return target;
  }

  async function answerOf(response) {
    if (response.status === 204) return null;
    var type = (response.headers.get("content-type") || "").split(";")[0].trim();
    if (type === "application/json" || type === "application/problem+json") return response.json();
    return response.arrayBuffer();
  }

  async function call(path, options) {
    options = options || {};
    var hasBody = options.body !== undefined;
    for (var attempt = 0; ; attempt++) {
      var s = await open(attempt > 0);
      var headers = { authorization: "Bearer " + s.token, accept: "application/json" };
      var init = {
        method: options.method || (hasBody ? "POST" : "GET"),
        headers: headers,
        credentials: "omit",
        cache: "no-store",
        referrerPolicy: "no-referrer",
      };
      if (hasBody) {
        headers["content-type"] = "application/json";
        init.body = JSON.stringify(options.body);
      }
      var response = await fetch(url(s.appId, path, options.query), init);
      var answer = await answerOf(response);
      if (response.ok) return answer;
      var problem = answer && typeof answer === "object" && !(answer instanceof ArrayBuffer) ? answer : {};
      if (response.status === 401 && problem.code === "miniapp.session_expired" && attempt === 0) continue;
      throw YimaError(problem.code || "http." + response.status, problem.detail || problem.title, response.status, problem);
    }
  }

  window.yima = Object.freeze({
    YimaError: YimaError,
    ready: ready,
    call: call,
    requestConsent: function (scope) {
      return ask("consent", { scope: String(scope) }).then(function (result) {
        return result.granted === true;
      });
    },
    confirmPayment: function (id) {
      return ask("payment", { id: String(id) });
    },
    showCode: function () {
      return ask("show_code").then(function () {
        return undefined;
      });
    },
    showPass: function (payload) {
      return ask("show_pass", { payload: String(payload) }).then(function () {
        return undefined;
      });
    },
  });
})();
