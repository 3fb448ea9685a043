"""QR rendering of code payloads (SVG and PNG) at error correction M, in alphanumeric mode."""

from __future__ import annotations

import io

import qrcode
import qrcode.constants
import qrcode.image.svg
from qrcode.util import MODE_ALPHA_NUM, QRData


def _qr(payload: str) -> qrcode.QRCode:  # type: ignore[type-arg]
    # One alphanumeric segment: "YA:" + Base45 uses only QR alphanumeric characters, the densest mode for it.
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4, box_size=8)
    qr.add_data(QRData(payload, mode=MODE_ALPHA_NUM))
    qr.make(fit=True)
    return qr


_versions: dict[int, int] = {}


def qr_version(payload: str) -> int:
    """The QR version of a payload; in one alphanumeric segment it depends only on the length, so it is
    computed once per length."""
    version = _versions.get(len(payload))
    if version is None:
        version = _versions[len(payload)] = int(_qr(payload).version)
    return version


def render_svg(payload: str) -> bytes:
    image = _qr(payload).make_image(
        image_factory=qrcode.image.svg.SvgPathFillImage
    )  # white background: readable on any theme
    return image.to_string(encoding="unicode").encode()


def render_png(payload: str) -> bytes:
    image = _qr(payload).make_image()
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
