"""Scene policies: which colours pass at which kind of scene, whether names show, and how replays are answered.

Policies are data (table scene_policies) an operator changes through the admin API; every worker holds them in
memory and reloads on change. A policy for (kind, scene) overrides the kind's default (kind, '').
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from server import audit
from server.terminals import repository

KINDS = ("bus", "clinic", "pharmacy", "scenic", "counter")
CHANNEL = "terminals"


@dataclass(frozen=True, slots=True)
class ScenePolicy:
    kind: str
    scene: str
    allowed_colours: frozenset[str]
    show_name: bool
    replay: str
    """"once": a code is accepted once anywhere (payment scenes); "per_terminal": the same code at the same
    terminal is answered again with the first answer (entry scenes)."""
    accept_ride_codes: bool


_FALLBACK = ScenePolicy("", "", frozenset({"green"}), False, "once", False)
"""Used only if a kind has no default row: the strictest answer."""


class ScenePolicies:
    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str], ScenePolicy] = {}

    async def load(self, conn: asyncpg.Connection) -> None:
        self._by_key = {
            (r["kind"], r["scene"]): ScenePolicy(
                r["kind"],
                r["scene"],
                frozenset(r["allowed_colours"]),
                r["show_name"],
                r["replay"],
                r["accept_ride_codes"],
            )
            for r in await repository.list_policies(conn)
        }

    def for_scene(self, kind: str, scene: str) -> ScenePolicy:
        return self._by_key.get((kind, scene)) or self._by_key.get((kind, "")) or _FALLBACK

    def all(self) -> list[ScenePolicy]:
        return sorted(self._by_key.values(), key=lambda p: (p.kind, p.scene))

    async def update(
        self,
        conn: asyncpg.Connection,
        *,
        actor: str,
        kind: str,
        scene: str,
        allowed_colours: list[str],
        show_name: bool,
        replay: str,
        accept_ride_codes: bool,
    ) -> None:
        await repository.upsert_policy(
            conn,
            kind=kind,
            scene=scene,
            allowed_colours=sorted(set(allowed_colours)),
            show_name=show_name,
            replay=replay,
            accept_ride_codes=accept_ride_codes,
            at=datetime.now(UTC),
            by=actor,
        )
        await audit.append(
            conn,
            actor=actor,
            action="scene_policy.updated",
            target=f"scene_policy:{kind}/{scene}",
            details={
                "allowed_colours": sorted(set(allowed_colours)),
                "show_name": show_name,
                "replay": replay,
                "accept_ride_codes": accept_ride_codes,
            },
        )
