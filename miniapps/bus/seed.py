"""Demo data: the operator's first fare table (Guangde county lines by number, made-up stops and fares)."""

from __future__ import annotations

from typing import Any

TABLE: dict[str, Any] = {
    "version": 1,
    "effective_from": "2026-01-01T00:00:00+08:00",
    "lines": {
        "1": {
            "name": "1路 汽车站-太极洞",
            "stops": ["bus-station", "people-square", "taiji-cave"],
            "flat_fen": 200,
        },
        "2": {
            "name": "2路 火车站-开发区",
            "stops": ["railway-station", "people-square", "dev-zone"],
            "flat_fen": 200,
        },
        "k2": {
            "name": "K2路 城区-誓节镇",
            "stops": ["bus-station", "taozhou", "xinhang", "shijie", "shijie-market", "shijie-centre"],
            "stages": [{"up_to_stops": 2, "fare_fen": 200}, {"up_to_stops": 5, "fare_fen": 400}],
        },
    },
    "concessions": {"senior_60": 50, "senior_70": 0, "student": 50, "disability": 0, "veteran": 0},
    "age_bands": [
        {"category": "senior_60", "min_age": 60, "max_age": 69},
        {"category": "senior_70", "min_age": 70},
    ],
    "peak": [{"start": "07:00", "end": "09:00", "suspends": ["senior_60"]}],
    "transfer": {"window_min": 60, "off_fen": 100},
    "daily_cap_fen": 800,
    "monthly_cap_fen": 15000,
}
