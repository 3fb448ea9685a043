"""QR rendering of code payloads (SVG and PNG) at error correction M, in one segment: alphanumeric for codes, bytes
for app passes (`YP1.` + base64url, shown by the shell for yima.showPass)."""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

import qrcode
import qrcode.constants
import qrcode.image.svg
from qrcode.util import QRData


def _qr(payload: str) -> qrcode.QRCode:  # type: ignore[type-arg]
    # One segment in the densest mode that holds it: "YA:" + Base45 uses only QR alphanumeric characters (so
    # alphanumeric mode); a pass's base64url has lower-case letters (so bytes).
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4, box_size=8)
    qr.add_data(QRData(payload))  # (the mode: qrcode's optimal_mode of the whole payload)
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


class _PixelSvg(qrcode.image.svg.SvgPathFillImage):
    """The QR as SVG, its size declared in pixels (the PNG's size) over the drawing's `viewBox`.

    qrcode declares millimetres (a box of 10 pixels is 1 mm), which rasterisers such as resvg refuse; pixels with
    a viewBox are what browsers and rasterisers all accept, and the drawing still scales to any size. White
    background: readable on any theme.
    """

    def units(self, pixels: int | Decimal, text: bool = True) -> Any:  # one method for both of its overloads
        # Coordinates inside the viewBox keep qrcode's units; only the declared size (text) becomes pixels.
        return f"{int(pixels)}" if text else super().units(pixels, text=False)


def render_svg(payload: str) -> bytes:
    image = _qr(payload).make_image(image_factory=_PixelSvg)
    return image.to_string(encoding="unicode").encode()


def render_png(payload: str) -> bytes:
    image = _qr(payload).make_image()
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
