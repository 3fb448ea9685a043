"""Staff roles over the real HTTP API: operators and the app's admins grant and revoke (account, role, unit), a plain
resident is refused, every change is audited, and the gateway and `ctx.user.staff()` see a revoke at once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.conftest import Session, login
from tests.platform.conftest import Team, call, new_app_id, write_probe

CLINIC_1, CLINIC_2 = "clinic:guangde-people-1", "clinic:guangde-people-2"


async def test_grants_refusals_audit_and_revocation(team: Team, tmp_path: Path) -> None:
    app_id, _ = await team.ship(write_probe(tmp_path, new_app_id("staff")))
    client, operator = team.client, team.operator.headers
    staff = f"/v1/miniapps/{app_id}/staff"

    async def grant(by: Session | None, account: Session, role: str, unit: str | None = None) -> Any:
        headers = operator if by is None else by.headers
        return await client.post(
            staff, json={"account_id": account.account_id, "role": role, "unit": unit}, headers=headers
        )

    admin, doctor, other_doctor, resident = [await login(client) for _ in range(4)]
    for who in (admin, doctor, other_doctor, resident):  # each uses the app once
        assert (await call(client, who, app_id, "GET", "/whoami")).status_code == 200

    # the staff route is refused before the app runs; the app itself says the caller holds nothing
    r = await call(client, doctor, app_id, "GET", "/patients/today")
    assert (r.status_code, r.json()["code"], r.json()["extra"]["role"]) == (
        403,
        "miniapp.staff_required",
        "doctor",
    )
    assert (await call(client, doctor, app_id, "GET", "/staff/me")).json() == {"roles": []}

    # a plain resident grants nothing, not even to themselves
    for target in (doctor, resident):
        r = await grant(resident, target, "doctor", CLINIC_1)
        assert (r.status_code, r.json()["code"]) == (403, "staff.not_allowed"), r.text
    r = await client.get(staff, headers=resident.headers)
    assert (r.status_code, r.json()["code"]) == (403, "staff.not_allowed")

    # the operator makes an admin at one clinic
    r = await grant(None, admin, "admin", CLINIC_1)
    assert r.status_code == 201, r.text
    assert r.json()["granted_by"] == f"account:{team.operator.account_id}" and r.json()["unit"] == CLINIC_1
    r = await grant(None, admin, "admin", CLINIC_1)
    assert (r.status_code, r.json()["code"]) == (409, "staff.already_granted")

    # the admin grants doctors at their clinic only, never admins, never to themselves
    r = await grant(admin, doctor, "doctor", CLINIC_1)
    assert r.status_code == 201, r.text
    for who, role, unit in ((other_doctor, "doctor", CLINIC_2), (other_doctor, "doctor", None),
                            (doctor, "admin", CLINIC_1), (admin, "doctor", CLINIC_1)):  # fmt: skip
        r = await grant(admin, who, role, unit)
        assert (r.status_code, r.json()["code"]) == (403, "staff.not_allowed"), (role, unit, r.text)

    # what the API refuses, with stable codes
    refusals = [
        ({"account_id": doctor.account_id, "role": "surgeon"}, 422, "staff.unknown_role"),
        (
            {"account_id": doctor.account_id, "role": "doctor", "unit": "pharmacy:p1"},
            422,
            "staff.unknown_unit",
        ),
        ({"account_id": doctor.account_id, "role": "doctor", "unit": "诊所:1"}, 400, "request.invalid"),
        ({"account_id": 2**62, "role": "doctor"}, 404, "staff.unknown_account"),
    ]
    for body, status, code in refusals:
        r = await client.post(staff, json=body, headers=operator)
        assert (r.status_code, r.json()["code"]) == (status, code), (body, r.text)
    r = await client.post("/v1/miniapps/test.nothing.here/staff", json=refusals[0][0], headers=operator)
    assert (r.status_code, r.json()["code"]) == (404, "miniapp.not_found")

    # the doctor is let through and the app sees the unit; the listing shows who granted what
    r = await call(client, doctor, app_id, "GET", "/patients/today")
    assert (r.status_code, r.json()) == (200, {"doctor": True, "clinics": [CLINIC_1]}), r.text
    listed = (await client.get(staff, headers=admin.headers)).json()
    assert [(g["account_id"], g["role"], g["unit"]) for g in listed] == [
        (admin.account_id, "admin", CLINIC_1),
        (doctor.account_id, "doctor", CLINIC_1),
    ]

    # the admin revokes: the next call is refused at once
    r = await client.delete(
        f"{staff}/{doctor.account_id}/doctor", params={"unit": CLINIC_1}, headers=admin.headers
    )
    assert r.status_code == 204, r.text
    r = await call(client, doctor, app_id, "GET", "/patients/today")
    assert (r.status_code, r.json()["code"]) == (403, "miniapp.staff_required")
    r = await client.delete(
        f"{staff}/{doctor.account_id}/doctor", params={"unit": CLINIC_1}, headers=operator
    )
    assert (r.status_code, r.json()["code"]) == (404, "staff.not_granted")

    async with client.app.state.core.db.connection() as conn:
        rows = await conn.fetch(
            "SELECT actor, action, details FROM audit_log WHERE target = $1 AND action LIKE 'staff.%' ORDER BY seq",
            f"miniapp:{app_id}",
        )
    assert [(r["actor"], r["action"], r["details"]["account_id"], r["details"]["role"]) for r in rows] == [
        (f"account:{team.operator.account_id}", "staff.granted", admin.account_id, "admin"),
        (f"account:{admin.account_id}", "staff.granted", doctor.account_id, "doctor"),
        (f"account:{admin.account_id}", "staff.revoked", doctor.account_id, "doctor"),
    ]


async def test_a_terminal_unit_must_be_ascii_kind_and_id(team: Team) -> None:
    for unit in ("clinic", "诊所:一", "clinic:a b", "Clinic:1"):
        r = await team.client.post(
            "/v1/admin/terminals",
            json={"name": "gate", "kind": "clinic", "scene": "s", "public_key": "A" * 43, "unit": unit},
            headers=team.operator.headers,
        )
        assert (r.status_code, r.json()["code"]) == (400, "request.invalid"), (unit, r.text)


async def test_the_catalog_asks_for_each_pass_share_with_its_purpose(team: Team, tmp_path: Path) -> None:
    folder = write_probe(tmp_path, new_app_id("medical"))
    with (folder / "miniapp.toml").open("a") as manifest:
        manifest.write(
            '\n[share_passes_with]\n"gov.guangde.medicine" = "Pharmacies redeem your e-prescriptions"\n'
        )
    app_id, _ = await team.ship(folder)
    resident = await login(team.client)

    def share_of(catalog: list[dict[str, Any]]) -> dict[str, Any]:
        entry = next(e for e in catalog if e["app_id"] == app_id)
        return next(s for s in entry["scopes"] if s["name"] == "pass_share:gov.guangde.medicine")

    catalog = (await team.client.get("/v1/miniapps", headers=resident.headers)).json()
    assert share_of(catalog) == {
        "name": "pass_share:gov.guangde.medicine",
        "purpose": "Pharmacies redeem your e-prescriptions",
        "state": "not_asked",
    }
    consent = f"/v1/me/consents/{app_id}/pass_share:gov.guangde.medicine"
    r = await team.client.put(consent, json={"granted": True}, headers=resident.headers)
    assert r.status_code == 200, r.text
    catalog = (await team.client.get("/v1/miniapps", headers=resident.headers)).json()
    assert share_of(catalog)["state"] == "granted"
    # a share the manifest does not declare is no scope to decide
    r = await team.client.put(
        f"/v1/me/consents/{app_id}/pass_share:gov.guangde.bus",
        json={"granted": True},
        headers=resident.headers,
    )
    assert (r.status_code, r.json()["code"]) == (422, "consent.unknown_scope")


async def test_the_same_grant_racing_is_granted_once(team: Team, tmp_path: Path) -> None:
    app_id, _ = await team.ship(write_probe(tmp_path, new_app_id("race")))
    doctor = await login(team.client)
    body = {"account_id": doctor.account_id, "role": "doctor", "unit": CLINIC_1}
    answers = await asyncio.gather(
        *[
            team.client.post(f"/v1/miniapps/{app_id}/staff", json=body, headers=team.operator.headers)
            for _ in range(4)
        ]
    )
    assert sorted(a.status_code for a in answers) == [201, 409, 409, 409], [a.text for a in answers]
    async with team.client.app.state.core.db.connection() as conn:
        audited = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE target = $1 AND action = 'staff.granted'",
            f"miniapp:{app_id}",
        )
    assert audited == 1
