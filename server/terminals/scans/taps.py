"""Taps: a scan boarding (`on`, every scan before taps existed) or a rider tapping off (`off`, 下车刷卡)."""

from __future__ import annotations


def tap_key(replay_key: bytes, tap: str) -> bytes:
    """The key a scan spends its code under: a tap-off's apart from the boarding's, so a rider shows one code
    to board and once more to tap off (each still once)."""
    return replay_key if tap == "on" else b"off:" + replay_key
