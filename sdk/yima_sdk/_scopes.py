"""The consent scopes a manifest may declare (`[scopes]`): the fixed ones and `registered_in:<county>`.

Kept apart from the manifest's Structs because the residence scope carries its own rules (a real county code, a
cap on how many) that the server's consent capability and the simulator's fixtures rely on too.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from yima_sdk.errors import ManifestError

__all__ = [
    "MAX_RESIDENCE_SCOPES",
    "RESIDENCE_SCOPE",
    "SCOPES",
    "FixedScope",
    "Scope",
    "check_scopes",
    "is_residence_scope",
]

FixedScope = Literal["birth_date", "real_name_masked", "phone_masked", "health_color"]
SCOPES: frozenset[str] = frozenset(FixedScope.__args__)  # type: ignore[attr-defined]
"""Resident data scopes an app may ask consent for (`[scopes]`), besides `registered_in:<county>`; anything else
is a manifest error."""
RESIDENCE_SCOPE = "registered_in:"
"""`registered_in:341822`: only whether the resident's real-name identity is registered in that county (its
6-digit administrative division code): "true" or "false", never where they live. One scope per county, so the
resident consents to exactly the question the app asks."""
MAX_RESIDENCE_SCOPES = 8
"""The most `registered_in:` scopes one manifest may declare: enough for a county and its partners (the 一地六县
alliance is seven), too few for yes-or-no answers over many counties to locate a resident. The server's upload
check holds an app's versions in review, approved or live to the same 8 together."""
_PROVINCES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 61 62 63 64 65 71 81 82".split()
)
"""The first two digits of an administrative division code (GB/T 2260): a province, autonomous region or
municipality, as identity's ID number check knows them."""
Scope = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^(birth_date|real_name_masked|phone_masked|health_color|registered_in:[1-9][0-9]{5})(?!\n)$"
    ),
]


def is_residence_scope(name: str) -> bool:
    """`registered_in:` and a county's 6-digit administrative division code (GB/T 2260): a province that exists,
    then neither the prefecture's two digits nor the county's are 00 (341800 is a prefecture, 340000 a province)."""
    code = name.removeprefix(RESIDENCE_SCOPE)
    return (
        code != name
        and len(code) == 6
        and code.isascii()
        and code.isdigit()
        and code[:2] in _PROVINCES
        and code[2:4] != "00"
        and code[4:] != "00"
    )


def check_scopes(scopes: object, source: str) -> None:
    """Name the offending scope: msgspec reports dict keys and values without saying which entry failed."""
    if not isinstance(scopes, dict):
        return  # msgspec reports the wrong type with the field's name
    for name, purpose in scopes.items():
        if name not in SCOPES and not is_residence_scope(name):
            raise ManifestError(
                f"{source}: field `scopes.{name}`: unknown scope; known scopes: {', '.join(sorted(SCOPES))}, "
                "and registered_in:<a county's 6-digit division code, such as 341822>"
            )
        if not isinstance(purpose, str) or not 4 <= len(purpose.strip()) <= 200:
            raise ManifestError(
                f"{source}: field `scopes.{name}`: needs its purpose, a sentence of 4-200 characters that the "
                "resident reads when asked for consent"
            )
    counties = sum(1 for name in scopes if name not in SCOPES)
    if counties > MAX_RESIDENCE_SCOPES:
        raise ManifestError(
            f"{source}: field `scopes`: {counties} registered_in: scopes; at most {MAX_RESIDENCE_SCOPES}, since "
            "each is one more yes or no about where the resident is registered"
        )
