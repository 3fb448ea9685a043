"""`yima-sdk dev` serves the app's page (`ui/`) the way the core does, inside a simulated shell:

    GET  /                                   the shell: the app's page in its sandboxed frame (?user=alice)
    GET  /static/yima.js, /static/miniapp-host.js   the same scripts the core serves
    GET  /miniapps/<id>/ui/<path>            the page's files, under the core's page policy
    POST /v1/me/miniapps/<id>/session        an app session for the shell's resident (`Bearer sim.<user>`)
    GET  /v1/miniapps, PUT /v1/me/consents/<id>/<scope>, GET /v1/me/payments, POST /v1/me/payments/<n>/confirm
                                             (or /decline), POST /v1/me/miniapps/<id>/passes/qr (a pass's
                                             QR as PNG; needs yima-sdk[qr]): what miniapp-host.js asks of the
                                             resident's API

A page's calls reach the gateway path with `Bearer yas_sim.<user>`, and get the gateway's CORS answers.
The simulator's sessions are names, not secrets: it serves 127.0.0.1 only and holds made-up residents.
"""

from __future__ import annotations

import hashlib
import html
import io
from importlib import resources
from pathlib import PurePosixPath
from typing import Any

import msgspec

from yima_sdk.codes import CredentialError
from yima_sdk.simulator._host import AsyncSimulator
from yima_sdk.simulator._responses import SimResponse, json_response, problem
from yima_sdk.ui_bundle import UI_MEDIA_TYPES, page_headers

RESIDENT_PREFIX = "sim."
SESSION_PREFIX = "yas_sim."
GATEWAY_CORS = {
    "access-control-allow-origin": "*",
    "access-control-expose-headers": "etag, retry-after, content-disposition",
}
PREFLIGHT = {
    **GATEWAY_CORS,
    "access-control-allow-methods": "GET, POST, PUT, DELETE, PATCH",
    "access-control-allow-headers": "authorization, content-type, accept, if-match, if-none-match",
    "access-control-max-age": "600",
}
_STATIC = {
    "/static/yima.js": "text/javascript; charset=utf-8",
    "/static/miniapp-host.js": "text/javascript; charset=utf-8",
    "/static/dev-host.js": "text/javascript; charset=utf-8",
    "/static/dev-host.css": "text/css; charset=utf-8",
}
_SHELL_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; frame-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class Pages:
    """The simulated shell's side of one AsyncSimulator: which scopes each fixture resident decided."""

    def __init__(self, sim: AsyncSimulator, default_user: str | None) -> None:
        self.sim = sim
        self.default_user = default_user or next(iter(sim.platform.users))
        self.decided: dict[tuple[str, str], bool] = {}

    def session_user(self, authorization: str) -> str | None:
        """The fixture resident of a page's app session (`Bearer yas_sim.<user>`), else None."""
        token = authorization.partition(" ")[2].strip()
        name = token.removeprefix(SESSION_PREFIX) if token.startswith(SESSION_PREFIX) else None
        return name if name in self.sim.platform.users else None

    async def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> SimResponse | None:
        """The answer when `path` is one of the page routes above; None otherwise."""
        app_id = self.sim.manifest.id
        if method == "OPTIONS" and path.startswith(f"/v1/miniapps/{app_id}/api/"):
            return SimResponse(204, dict(PREFLIGHT), b"")
        if method == "GET" and path == "/":
            text = _asset("dev-host.html").decode()
            text = text.replace("{app_id}", html.escape(app_id)).replace(
                "{user}", html.escape(self.default_user)
            )
            return SimResponse(
                200, {"content-type": "text/html; charset=utf-8", **_shell_headers()}, text.encode()
            )
        if method == "GET" and path in _STATIC:
            return SimResponse(200, {"content-type": _STATIC[path], **_shell_headers()}, _asset(path[8:]))
        prefix = f"/miniapps/{app_id}/ui/"
        if method == "GET" and (path == prefix[:-1] or path.startswith(prefix)):
            return self._page_file(path[len(prefix) :], headers)
        if path == "/v1/miniapps" or path.startswith("/v1/me/"):
            user = self._resident(headers.get("authorization", ""))
            if user is None:
                return problem(
                    401, "auth.required", "send the shell's resident: Authorization: Bearer sim.<user>"
                )
            return self._resident_api(method, path, user, body)
        return None

    def _page_file(self, name: str, headers: dict[str, str]) -> SimResponse:
        name = name or "index.html"
        if name.endswith("/"):
            name += "index.html"
        parts = PurePosixPath(name).parts
        media = UI_MEDIA_TYPES.get(PurePosixPath(name).suffix.lower())
        target = self.sim.folder / "ui" / name
        if media is None or ".." in parts or any(p.startswith(".") for p in parts) or not target.is_file():
            return problem(404, "miniapp.ui_not_found", f"no ui/{name} in {self.sim.folder}")
        content = target.read_bytes()  # read afresh: edit the page, reload the browser
        etag = '"' + hashlib.sha256(content).hexdigest()[:32] + '"'
        origin = "http://" + headers.get("host", "127.0.0.1")
        answer = {"content-type": media, "etag": etag, **page_headers(origin, self.sim.manifest.id)}
        if headers.get("if-none-match") == etag:
            return SimResponse(304, answer, b"")
        return SimResponse(200, answer, content)

    def _resident(self, authorization: str) -> str | None:
        token = authorization.partition(" ")[2].strip()
        name = token.removeprefix(RESIDENT_PREFIX) if token.startswith(RESIDENT_PREFIX) else None
        return name if name in self.sim.platform.users else None

    def _resident_api(self, method: str, path: str, user: str, body: bytes) -> SimResponse:
        manifest, platform = self.sim.manifest, self.sim.platform
        me = platform.user_id(user)
        if method == "POST" and path == f"/v1/me/miniapps/{manifest.id}/session":
            token = SESSION_PREFIX + user
            return json_response(
                {"app_id": manifest.id, "token": token, "expires_in": 600, "user_id": me}, 201
            )
        if method == "GET" and path == "/v1/miniapps":
            scopes = [
                {"name": name, "purpose": purpose, "state": self._state(user, name)}
                for name, purpose in sorted(manifest.scopes.items())
            ]
            entry = {
                "app_id": manifest.id,
                "name": manifest.name,
                "version": manifest.version,
                "scopes": scopes,
            }
            if (self.sim.folder / "ui" / "index.html").is_file():
                entry["page"] = f"/miniapps/{manifest.id}/ui/"
            return json_response([entry])
        if method == "PUT" and path.startswith(f"/v1/me/consents/{manifest.id}/"):
            scope = path.rpartition("/")[2]
            if scope not in manifest.scopes:
                return problem(422, "consent.unknown_scope", f"the app does not ask for {scope!r}")
            granted = bool(msgspec.json.decode(body or b"{}").get("granted"))
            self.decided[(user, scope)] = granted
            platform.set_consent(user, scope, granted)
            return json_response({"app_id": manifest.id, "scope": scope, "granted": granted})
        if method == "POST" and path == f"/v1/me/miniapps/{manifest.id}/passes/qr":
            return self._pass_qr(body, me)
        if method == "GET" and path == "/v1/me/payments":
            mine = [p for p in platform.payments.values() if p["user_id"] == me]
            return json_response([_resident_payment(manifest.id, p) for p in reversed(mine)])
        if method == "POST" and path.startswith("/v1/me/payments/"):
            _, _, _, _, number, action = path.split("/", 5)
            payment_id = f"pay_{number}"
            payment = platform.payments.get(payment_id)
            if payment is None or payment["user_id"] != me or action not in ("confirm", "decline"):
                return problem(404, "payment.not_found", "no such pending payment")
            if payment["status"] != "pending_confirmation":
                return problem(409, "payment.already_decided", "this payment was already decided")
            decided = platform.confirm_payment(payment_id, accept=action == "confirm")
            return json_response(_resident_payment(manifest.id, decided))
        return problem(404, "sim.not_found", f"the simulated shell has no {method} {path}")

    def _pass_qr(self, body: bytes, me: str) -> SimResponse:
        """yima.showPass: one of this app's passes held by the resident, drawn as production draws it."""
        try:
            payload = msgspec.json.decode(body or b"{}").get("payload")
        except (msgspec.DecodeError, AttributeError):
            payload = None
        if not isinstance(payload, str) or not payload:
            return problem(400, "request.invalid", "send {payload: the YP1 pass}")
        try:
            self.sim.platform.credentials.held(payload, me)
        except CredentialError as exc:
            if exc.code in ("credential.other_app", "credential.not_holder"):
                return problem(404, "pass.not_found", "No such pass of this mini-app held by you")
            return problem(422, "pass.invalid", f"Not a valid pass ({exc.code})")
        try:
            import qrcode  # optional: yima-sdk[qr]
            import qrcode.constants
        except ImportError:
            return problem(501, "sim.qr_unavailable", "install yima-sdk[qr] to draw passes")
        qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4, box_size=8)
        qr.add_data(payload)
        qr.make(fit=True)
        out = io.BytesIO()
        qr.make_image().save(out, format="PNG")
        return SimResponse(200, {"content-type": "image/png", "cache-control": "no-store"}, out.getvalue())

    def _state(self, user: str, scope: str) -> str:
        decided = self.decided.get((user, scope))
        if decided is None:
            return "not_asked"
        return "granted" if decided else "refused"


def with_cors(response: SimResponse) -> SimResponse:
    return SimResponse(response.status, {**response.headers, **GATEWAY_CORS}, response.body)


def _resident_payment(app_id: str, payment: dict[str, Any]) -> dict[str, Any]:
    answer = {
        "id": int(str(payment["id"]).removeprefix("pay_")),
        "app_id": app_id,
        "amount_fen": payment["amount_fen"],
        "reason": payment["reason"],
        "status": payment["status"],
    }
    if payment.get("refunded_fen"):  # as the core: omitted while nothing was refunded
        answer["refunded_fen"] = payment["refunded_fen"]
        answer["refunds"] = list(payment.get("refunds", []))
    return answer


def _asset(name: str) -> bytes:
    """The simulated shell's own files (web/), or the page scripts the core serves too (web/shared/)."""
    web = resources.files("yima_sdk") / "web"
    shared = web / "shared" / name
    return (shared if shared.is_file() else web / name).read_bytes()


def _shell_headers() -> dict[str, str]:
    return {
        "content-security-policy": _SHELL_POLICY,
        "x-content-type-options": "nosniff",
        "cache-control": "no-cache",
    }


__all__ = ["Pages", "with_cors"]
