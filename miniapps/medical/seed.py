"""Demo data: real Guangde institutions by name, made-up doctors, a week of sessions from `first`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

INSTITUTIONS = {
    "guangde-people": {"name": "广德市人民医院", "kind": "county", "waive_age": 65},
    "guangde-tcm": {"name": "广德市中医院", "kind": "county", "waive_age": 65},
    "taozhou": {"name": "桃州镇卫生院", "kind": "township", "waive_age": 65},
    "shijie": {"name": "誓节镇卫生院", "kind": "township", "waive_age": 65},
}
DEPARTMENTS = {
    "guangde-people.internal": ("guangde-people", "内科 Internal medicine"),
    "guangde-people.paediatrics": ("guangde-people", "儿科 Paediatrics"),
    "guangde-tcm.tcm": ("guangde-tcm", "中医内科 TCM internal medicine"),
    "taozhou.general": ("taozhou", "全科 General practice"),
    "shijie.general": ("shijie", "全科 General practice"),
}
DOCTORS = {  # made-up people
    "dr-chen": ("guangde-people.internal", "陈明 Chen Ming", "主任医师", 1000),
    "dr-zhou": ("guangde-people.internal", "周丽 Zhou Li", "主治医师", 500),
    "dr-sun": ("guangde-people.paediatrics", "孙亮 Sun Liang", "主治医师", 500),
    "dr-wu": ("guangde-tcm.tcm", "吴芳 Wu Fang", "副主任医师", 800),
    "dr-he": ("taozhou.general", "何平 He Ping", "全科医师", 100),
    "dr-xu": ("shijie.general", "许静 Xu Jing", "全科医师", 100),
}


def documents(first: dt.date, days: int = 7) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for inst, value in INSTITUTIONS.items():
        yield "institutions", inst, value
    for dep, (inst, name) in DEPARTMENTS.items():
        yield "departments", dep, {"institution": inst, "name": name}
    for doc, (dep, name, title, _) in DOCTORS.items():
        yield (
            "doctors",
            doc,
            {"institution": dep.split(".")[0], "department": dep, "name": name, "title": title},
        )
    for offset in range(days):
        day = (first + dt.timedelta(days=offset)).isoformat()
        for doc, (dep, name, _, fee) in DOCTORS.items():
            inst = dep.split(".")[0]
            township = INSTITUTIONS[inst]["kind"] == "township"
            for half in ("am", "pm"):
                yield "sessions", f"{doc}.{day}.{half}", {
                    "institution": inst, "department": dep, "doctor": doc, "doctor_name": name,
                    "day": day, "half": half, "capacity": 20, "fee_fen": fee, "walk_in": township,
                    "referral_reserve": 0 if township else 2,
                    "status": "open",
                }  # fmt: skip
