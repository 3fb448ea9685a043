"""Property-based: thousands of random mutations of a valid payload are never accepted and never answer 500."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yima_sdk import base45

from tests.conftest import login_with_role
from tests.credentials.helpers import ankang_payload, register_terminal, terminal_token, verified_resident

ALPHABET = base45.ALPHABET + "abcxyz~é\x00"


@st.composite
def mutations(draw, payload: str) -> str:
    kind = draw(st.sampled_from(["flip_byte", "edit_text", "truncate", "extend", "splice"]))
    if kind == "flip_byte":
        raw = bytearray(base45.decode(payload[3:]))
        for _ in range(draw(st.integers(1, 3))):
            i = draw(st.integers(0, len(raw) - 1))
            raw[i] ^= draw(st.integers(1, 255))
        return payload[:3] + base45.encode(bytes(raw))
    if kind == "edit_text":
        i = draw(st.integers(0, len(payload) - 1))
        return payload[:i] + draw(st.text(ALPHABET, min_size=1, max_size=3)) + payload[i + 1 :]
    if kind == "truncate":
        return payload[: draw(st.integers(0, len(payload) - 1))]
    if kind == "extend":
        return payload + draw(st.text(ALPHABET, min_size=1, max_size=400))
    i, j = sorted(draw(st.lists(st.integers(0, len(payload)), min_size=2, max_size=2)))
    return payload[:i] + payload[j:] + payload[i:j]


async def test_random_mutations_are_never_accepted(client):
    operator = await login_with_role(client, "operator")
    resident, _ = await verified_resident(client)
    terminal_id, key = await register_terminal(client, operator, kind="scenic")
    headers = await terminal_token(client, terminal_id, key)
    payload = await ankang_payload(client, resident)
    seen: dict[str, int] = {}

    # Hypothesis draws the mutations (it cannot drive an async test itself); each is then scanned for real.
    drawn: list[str] = []

    @settings(max_examples=2000, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(mutations(payload))
    def collect(mutated: str) -> None:
        if mutated != payload:
            drawn.append(mutated)

    collect()
    assert len(drawn) > 1500
    for mutated in drawn:
        r = await client.post(
            "/v1/scans", json={"payload": mutated, "scanned_at": int(time.time() * 1000)}, headers=headers
        )
        assert r.status_code == 200, (mutated, r.text)
        body = r.json()
        assert body["result"] == "reject", mutated
        seen[body["reason"]] = seen.get(body["reason"], 0) + 1
    # The mutations reached more than the decoder: signatures and keys were checked too.
    assert {"credential.malformed", "credential.bad_signature"} <= seen.keys(), seen
