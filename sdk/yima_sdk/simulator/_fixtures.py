"""The simulator's fixture residents: made up (no real personal data), with the values of every scope and a
one-card balance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from yima_sdk.manifest import RESIDENCE_SCOPE

__all__ = ["FIXTURE_USERS", "FixtureUser"]


@dataclass(frozen=True)
class FixtureUser:
    """A made-up resident (no real personal data) with the values of every scope and a one-card balance."""

    name: str
    birth_date: str
    real_name_masked: str
    phone_masked: str
    health_color: Literal["green", "yellow", "red"]
    balance_fen: int = 10_000
    registered_county: str = "341822"
    """Where the real-name identity is registered (Guangde unless said): only `registered_in:<code>` tells it,
    as true or false."""

    def scope(self, scope: str) -> str:
        if scope.startswith(RESIDENCE_SCOPE):
            return "true" if scope.removeprefix(RESIDENCE_SCOPE) == self.registered_county else "false"
        return str(getattr(self, scope))


FIXTURE_USERS: dict[str, FixtureUser] = {
    user.name: user
    for user in (
        FixtureUser("alice", "1990-05-14", "李*", "139****0001", "green"),
        FixtureUser("grandpa", "1948-02-01", "王*", "138****0002", "green", balance_fen=5_000),
        FixtureUser(
            "carol", "2001-11-30", "陈*", "137****0003", "yellow", balance_fen=0, registered_county="320481"
        ),
    )
}
"""`alice` (adult, green), `grandpa` (born 1948: concessions), `carol` (yellow code, empty one-card, registered
in Liyang 320481; the others in Guangde 341822)."""
