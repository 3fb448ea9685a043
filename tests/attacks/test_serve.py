"""Attacks on a real `yima serve` process (issue 16, point 10 and the server's exposure): forged X-Forwarded-For,
metrics scraped from the public port, and a server left in development mode."""

from __future__ import annotations

import subprocess

import httpx

from tests.attacks.server import yima_serve as _yima_serve
from tests.conftest import free_port, random_phone
from tests.test_cli import YIMA, _env

_LIMIT = {"YIMA_OTP_PER_ADDRESS_PER_HOUR": "3"}


def _otp_answers(url: str, forwarded_for: list[str]) -> list[int]:
    return [
        httpx.post(
            f"{url}/v1/auth/otp", json={"phone": random_phone()}, headers={"X-Forwarded-For": hop}
        ).status_code
        for hop in forwarded_for
    ]


def test_forged_forwarded_for_from_loopback_does_not_escape_the_address_limit(
    database_url, master_key, tmp_path
):
    with _yima_serve(database_url, master_key, tmp_path, **_LIMIT) as (url, _):
        # Each request claims another client; the server must still count them all against 127.0.0.1.
        assert _otp_answers(url, [f"203.0.113.{i}" for i in range(1, 6)]) == [202, 202, 202, 429, 429]


def test_forwarded_for_is_believed_from_a_configured_proxy(database_url, master_key, tmp_path):
    with _yima_serve(database_url, master_key, tmp_path, YIMA_TRUSTED_PROXIES="127.0.0.1", **_LIMIT) as (
        url,
        _,
    ):
        assert _otp_answers(url, [f"198.51.100.{i}" for i in range(1, 6)]) == [202] * 5
        assert _otp_answers(url, ["192.0.2.9"] * 4) == [202, 202, 202, 429]


def test_metrics_are_scraped_only_from_the_operations_port(database_url, master_key, tmp_path):
    with _yima_serve(database_url, master_key, tmp_path, **_LIMIT) as (url, metrics_port):
        public = httpx.get(f"{url}/metrics")
        assert public.status_code == 404 and "yima_http_requests_total" not in public.text
        # Not even with a Host header naming the operations port: the socket decides.
        spoofed = httpx.get(f"{url}/metrics", headers={"host": f"127.0.0.1:{metrics_port}"})
        assert spoofed.status_code == 404
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert scraped.status_code == 200 and "yima_http_requests_total" in scraped.text


def test_serve_refuses_development_mode_unless_forced(database_url):
    for mode in ("development", "test"):
        r = subprocess.run(
            [YIMA, "serve", "--port", str(free_port())],
            env=_env(YIMA_DATABASE_URL=database_url, YIMA_MODE=mode),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 2, r.stderr
        assert "YIMA_MODE" in r.stderr and "--allow-development" in r.stderr
