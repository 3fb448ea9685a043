"""Concession grants by the concessions staff: what a grant must be (a category the tables price, an expiry in
the future and within five years, a rider whose page showed them their id), the staff's list, and a revocation
ending the grant for the next ride online and for an offline ride settled after it."""

from __future__ import annotations

import datetime as dt

from bus_days import to_wednesday_10
from yima_sdk.testing import MiniApp


def test_a_grant_names_a_priced_category_a_future_bounded_expiry_and_a_rider_who_opened_the_app(
    miniapp: MiniApp,
) -> None:
    wednesday = to_wednesday_10(miniapp)
    miniapp.grant_staff("carol", "concessions")
    alice = miniapp.get("/me", user="alice").json()["user_id"]
    grant = {
        "user_id": alice,
        "category": "student",
        "expires_at": (wednesday + dt.timedelta(days=1)).isoformat(),
    }

    def refused(change: dict[str, str]) -> tuple[int, str]:
        r = miniapp.post("/concessions/grants", user="carol", json=grant | change)
        return r.status, r.json()["code"]

    assert refused({"expires_at": (wednesday - dt.timedelta(minutes=1)).isoformat()}) == (
        400,
        "bus.expiry_in_past",
    )
    assert refused({"expires_at": (wednesday + dt.timedelta(days=6 * 365)).isoformat()}) == (
        400, "bus.expiry_too_far",
    )  # fmt: skip
    assert refused({"category": "senior_70"}) == (
        400,
        "bus.unknown_category",
    )  # the birth date's, not staff's
    assert refused({"user_id": "alice"}) == (400, "bus.bad_rider_id")
    # grandpa's id is well formed, but his page never showed it to him: a typo, or someone not riding here
    assert refused({"user_id": miniapp.user_id("grandpa")}) == (404, "bus.unknown_rider")
    assert miniapp.get("/me", user="grandpa").status == 200
    assert (
        miniapp.post(
            "/concessions/grants", user="carol", json=grant | {"user_id": miniapp.user_id("grandpa")}
        ).status
        == 201
    )

    # A table whose concessions leave out veterans: a veteran grant would change nothing, so it is refused.
    miniapp.grant_staff("carol", "fares")
    v2 = miniapp.get("/fares/tables", user="carol").json()["tables"][0]
    v2 = v2 | {"version": 2, "effective_from": (wednesday + dt.timedelta(minutes=1)).isoformat()}
    v2["concessions"] = {k: v for k, v in v2["concessions"].items() if k != "veteran"}
    assert miniapp.put("/fares/tables/2", user="carol", json=v2).status == 201
    assert (
        miniapp.post("/concessions/grants", user="carol", json=grant | {"category": "veteran"}).status == 201
    )
    miniapp.advance(minutes=2)
    assert refused({"category": "veteran"}) == (400, "bus.unknown_category")


def test_staff_list_grants_and_a_revocation_ends_one_online_and_at_settlement(miniapp: MiniApp) -> None:
    miniapp.switches.payment_confirmation = "auto"
    wednesday = to_wednesday_10(miniapp)
    miniapp.grant_staff("carol", "concessions")
    alice = miniapp.get("/me", user="alice").json()["user_id"]
    grant = {
        "user_id": alice,
        "category": "student",
        "expires_at": (wednesday + dt.timedelta(days=90)).isoformat(),
    }
    assert miniapp.post("/concessions/grants", user="carol", json=grant).status == 201
    assert miniapp.get("/concessions/grants", user="alice").status == 403  # staff only
    (listed,) = miniapp.get("/concessions/grants", user="carol").json()["grants"]
    assert (listed["id"], listed["category"], listed["active"]) == (f"{alice}.student", "student", True)
    assert miniapp.get("/concessions/grants", user="carol", query={"user_id": "u_x"}).json()["grants"] == []

    def offline(at: dt.datetime) -> list[str]:  # a ride code scanned at `at`, uploaded now
        return miniapp.scan("bus", user="alice", unit="line:1", mode="offline", credential_type="ride_code",
                            amount_fen=200, scanned_at=at)  # fmt: skip

    assert miniapp.scan("bus", user="alice", unit="line:1") == ["1路 ¥1.00", "学生半价 student"]
    scanned_before = dt.datetime.fromtimestamp(miniapp.now, dt.UTC) + dt.timedelta(hours=3)
    miniapp.advance(hours=3, minutes=1)
    revoke = f"/concessions/grants/{alice}.student/revoke"
    assert miniapp.post(revoke, user="alice", json={"reason": "x"}).status == 403
    assert miniapp.post(revoke, user="carol", json={}).json()["code"] == "request.invalid"  # a reason, always
    revoked = miniapp.post(revoke, user="carol", json={"reason": "left school in June"}).json()
    assert (revoked["active"], revoked["granted_until"], revoked["revoke_reason"]) == (
        False, grant["expires_at"], "left school in June",
    )  # fmt: skip
    again = miniapp.post(revoke, user="carol", json={"reason": "again"})
    assert again.status == 200 and again.json() == revoked  # a retried revocation changes nothing
    assert miniapp.post("/concessions/grants/nope/revoke", user="carol", json={"reason": "x"}).status == 404

    balance = miniapp.platform.balance("alice")
    assert miniapp.scan("bus", user="alice", unit="line:1") == [
        "1路 ¥2.00"
    ]  # the next ride online: full fare
    # an offline ride after the revocation: settlement's 2 yuan stands, nothing is given back
    miniapp.advance(minutes=10)
    assert offline(dt.datetime.fromtimestamp(miniapp.now, dt.UTC) - dt.timedelta(minutes=5)) == ["1路 ¥2.00"]
    # an offline ride scanned while the grant held, uploaded after it was revoked, keeps the half fare
    assert offline(scanned_before) == ["1路 ¥1.00", "学生半价 student"]
    assert miniapp.platform.balance("alice") == balance - 200 - 200 - 100
    (listed,) = miniapp.get("/concessions/grants", user="carol").json()["grants"]
    assert (listed["active"], listed["revoked_at"] is not None) == (False, True)
    assert [c["category"] for c in miniapp.get("/me", user="alice").json()["concessions"]] == ["student"]

    # granted again (a new school year): in force again
    renewed = grant | {"expires_at": (wednesday + dt.timedelta(days=200)).isoformat()}
    assert miniapp.post("/concessions/grants", user="carol", json=renewed).json()["active"] is True
    miniapp.advance(hours=2)
    assert miniapp.scan("bus", user="alice", unit="line:1") == ["1路 ¥1.00", "学生半价 student"]
