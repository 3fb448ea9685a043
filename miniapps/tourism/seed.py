"""Demo data: real scenic spots of Guangde and of partner counties of the 一地六县 alliance by name, made-up
prices and capacities, the three cross-county routes, and a week of daily time slots from `first`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

SPOTS = {  # id: name, county, price in fen, re-entry the same day, capacity of each slot
    "taiji-cave": ("太极洞 Taiji Cave", "guangde", 8000, False, 300),
    "jishan-bamboo": ("笄山竹海 Jishan Bamboo Sea", "guangde", 4000, True, 200),
    "tianhuangping": ("天荒坪 Tianhuangping", "anji", 6000, True, 300),
    "tianmu-lake": ("天目湖 Tianmu Lake", "liyang", 9000, False, 300),
    "shanjuan-cave": ("善卷洞 Shanjuan Cave", "yixing", 7000, False, 200),
    "xianshan-lake": ("仙山湖 Xianshan Lake", "changxing", 5000, True, 200),
}
SLOTS = (("09:00", "12:00"), ("13:00", "16:00"))
PACKAGES = {  # id: name, spots, price in fen, days the pass is valid
    "holiday": ("假日休闲游 Holiday leisure route", ["taiji-cave", "tianmu-lake", "tianhuangping"], 19800, 3),
    "folk": ("民俗文化游 Folk culture route", ["jishan-bamboo", "shanjuan-cave", "xianshan-lake"], 13800, 3),
    "delta-heart": ("长三角之心 Heart of the Yangtze delta", ["taiji-cave", "jishan-bamboo", "tianhuangping",
                    "tianmu-lake"], 24800, 4),
}  # fmt: skip


def documents(first: dt.date, days: int = 7) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for spot, (name, county, price, reentry, _) in SPOTS.items():
        yield "spots", spot, {"name": name, "county": county, "price_fen": price, "reentry": reentry}
    for package, (name, spots, price, valid_days) in PACKAGES.items():
        value = {"name": name, "route": package, "spots": spots, "price_fen": price, "valid_days": valid_days}
        yield "packages", package, value
    for offset in range(days):
        day = (first + dt.timedelta(days=offset)).isoformat()
        for spot, (*_, capacity) in SPOTS.items():
            for start, end in SLOTS:
                yield "slots", f"{spot}.{day}.{start[:2]}", {
                    "spot": spot, "day": day, "start": start, "end": end, "capacity": capacity, "status": "open",
                }  # fmt: skip
