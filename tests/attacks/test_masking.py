"""Attack on the masked ID number (issue 16, point 12): what a profile shows must not rebuild the number."""

from __future__ import annotations

import secrets

from tests.conftest import AppClient, login, login_with_role, valid_id_number


async def test_masked_id_number_and_profile_do_not_narrow_the_number_down(client: AppClient):
    id_number = valid_id_number(birth="19620704", seq=f"{secrets.randbelow(1000):03d}")
    resident = await login(client)
    r = await client.put(
        "/v1/me/identity", json={"name": "赵六", "id_number": id_number}, headers=resident.headers
    )
    assert r.status_code == 200, r.text
    operator = await login_with_role(client, "operator")
    for profile in (
        r.json(),
        (await client.get("/v1/me", headers=resident.headers)).json(),
        (await client.get(f"/v1/admin/accounts/{resident.account_id}", headers=operator.headers)).json(),
    ):
        shown = profile["real_name"]["id_number"]
        assert shown == "*" * 14 + id_number[-4:]  # the region (first 4) and the birth date stay hidden
        assert "birth_date" not in profile["real_name"]
        assert "19620704" not in str(profile) and "1962-07-04" not in str(profile)
