"""Demo data: pharmacies in real Guangde towns (the pharmacies themselves are made up) and a catalogue."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

PHARMACIES = {
    "taozhou-1": {"name": "桃州镇中心药房", "town": "taozhou"},
    "shijie-1": {"name": "誓节镇惠民药房", "town": "shijie"},
    "xinhang-1": {"name": "新杭镇百姓药房", "town": "xinhang"},
}
DRUGS = {  # code: (name, otc or rx, watched class or None, price in fen per box)
    "paracetamol": ("对乙酰氨基酚片 Paracetamol", "otc", "antipyretic", 800),
    "ibuprofen": ("布洛芬缓释胶囊 Ibuprofen", "otc", "antipyretic", 1800),
    "oseltamivir": ("奥司他韦胶囊 Oseltamivir", "rx", "antiviral", 4500),
    "amoxicillin": ("阿莫西林胶囊 Amoxicillin", "rx", "antibiotic", 1200),
    "cefaclor": ("头孢克洛胶囊 Cefaclor", "rx", "antibiotic", 2600),
    "dextromethorphan": ("右美沙芬片 Dextromethorphan", "otc", "cough", 1500),
    "vitamin-c": ("维生素C片 Vitamin C", "otc", None, 500),
    "amlodipine": ("氨氯地平片 Amlodipine", "rx", None, 2000),
}


def documents() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for pharmacy, value in PHARMACIES.items():
        yield "pharmacies", pharmacy, value
    for code, (name, kind, watched, price) in DRUGS.items():
        yield "drugs", code, {"name": name, "kind": kind, "watched": watched, "price_fen": price}
