"""The local simulated host: the app runs in a child worker over the real bridge, every capability operation
of docs/sdk.md behaves as documented, the switches break what they say, and failures are contained."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import py_compile
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from yima_sdk import BadScanReply, ConsentDenied
from yima_sdk.simulator import LAYERS, AsyncSimulator, Simulator

APPS = Path(__file__).parent / "apps"
NOW = 1_767_225_600


@pytest.fixture
def sink() -> Iterator[Simulator]:
    clock = [float(NOW)]
    with Simulator(APPS / "sink", clock=lambda: clock[0]) as simulator:
        simulator.clock = clock  # type: ignore[attr-defined]
        yield simulator


def op(sim: Simulator, capability: str, operation: str, user: str | None = "alice", **kwargs: Any) -> Any:
    answer = sim.post(f"/op/{capability}/{operation}", json=kwargs, user=user)
    assert answer.status == 200, answer.text
    return answer.json()


def test_worker_is_a_separate_process_with_the_layers_the_machine_allows(sink: Simulator) -> None:
    answer = sink.get("/whoami", user="alice").json()
    assert answer["pid"] == sink.worker_pid != os.getpid()
    assert answer["id"] == answer["user_id"] == sink.user_id("alice")
    assert [layer.name for layer in sink.layers] == list(LAYERS)
    if sys.platform != "linux":
        assert sink.missing_layers == list(LAYERS)  # never silently claimed
    elif os.geteuid() == 0:
        assert sink.missing_layers == []  # root on Linux: every production layer, uid and netns included
    else:
        assert {"landlock", "seccomp", "rlimits", "env", "fds"}.isdisjoint(sink.missing_layers)


LINUX_ROOT = pytest.mark.skipif(
    sys.platform != "linux" or os.geteuid() != 0,
    reason="the simulator applies every layer only as root on Linux",
)


@LINUX_ROOT
def test_hostile_app_is_confined_like_in_production(capfd: pytest.CaptureFixture[str]) -> None:
    with Simulator(APPS / "hostile") as hostile:
        assert hostile.get("/read").json() == {"refused": True, "error": "PermissionError"}  # Landlock
        assert hostile.get("/socket").json() == {"refused": True, "error": "PermissionError"}  # seccomp
        ids = hostile.get("/ids").json()
        assert 0 not in ids["uids"] and ids["groups"] == []  # not root: the app's own unprivileged uid
        assert len(set(ids["uids"])) == 1
    # stdout stays on the developer's terminal, unlike production
    assert "hostile app printed" in capfd.readouterr().out


def test_user_ids_are_app_scoped_and_anonymous_is_none(sink: Simulator) -> None:
    with Simulator(APPS / "other") as other:
        assert other.get("/whoami", user="alice").json()["id"] != sink.user_id("alice")
    assert sink.get("/whoami", user=None).json()["id"] is None


def test_storage_versions_and_compare_and_set(sink: Simulator) -> None:
    assert op(sink, "storage", "put", key="doc", value={"n": 1}, expected_version=0) == {"value": 1}
    assert op(sink, "storage", "put", key="doc", value={"n": 2}, expected_version=0) == {
        "error": "storage.version_conflict"
    }
    assert op(sink, "storage", "put", key="doc", value={"n": 2}, expected_version=1) == {"value": 2}
    assert op(sink, "storage", "get_document", key="doc") == {
        "value": {"key": "doc", "value": {"n": 2}, "version": 2}
    }
    assert op(sink, "storage", "delete", key="doc", expected_version=1) == {
        "error": "storage.version_conflict"
    }
    assert op(sink, "storage", "delete", key="doc") == {"value": True}
    assert op(sink, "storage", "get", key="doc") == {"value": None}
    assert op(sink, "storage", "put", key="", value=1) == {"error": "capability.invalid_argument"}


def test_storage_list_pages_by_prefix(sink: Simulator) -> None:
    for i in range(5):
        op(sink, "storage", "put", key=f"trip:{i}", value=i)
    op(sink, "storage", "put", key="other", value=0)
    first = op(sink, "storage", "list", prefix="trip:", limit=3)["value"]
    assert [d["key"] for d in first["items"]] == ["trip:0", "trip:1", "trip:2"]
    second = op(sink, "storage", "list", prefix="trip:", limit=3, cursor=first["cursor"])["value"]
    assert [d["value"] for d in second["items"]] == [3, 4] and second["cursor"] is None


def test_bounded_counter(sink: Simulator) -> None:
    assert op(sink, "storage", "counter_add", name="slots", delta=1, max=2) == {"value": 1}
    assert op(sink, "storage", "counter_add", name="slots", delta=1, max=2) == {"value": 2}
    assert op(sink, "storage", "counter_add", name="slots", delta=1, max=2) == {
        "error": "storage.counter_out_of_range"
    }
    assert op(sink, "storage", "counter_get", name="slots") == {"value": 2}


def test_consent_switch_and_undeclared_scope(sink: Simulator) -> None:
    assert op(sink, "user", "scope", user="grandpa", name="birth_date") == {"value": "1948-02-01"}
    assert op(sink, "user", "scope", name="phone_masked") == {"error": "capability.denied"}
    assert op(sink, "user", "scope", name="id_number") == {"error": "capability.invalid_argument"}
    assert op(sink, "user", "scope", user=None, name="birth_date") == {"error": "consent.denied"}
    sink.switches.consent_denied = True
    assert op(sink, "user", "scope", name="birth_date") == {"error": "consent.denied"}
    # uncaught, the caller gets the stable code: over HTTP as the gateway would answer, from a scan as the error
    answer = sink.get("/uncaught-scope")
    assert answer.status == 403 and answer.json()["code"] == "consent.denied"
    with pytest.raises(ConsentDenied):
        sink.scan("clinic", user="alice")


def test_quota_switch_refuses_storage_writes_but_not_reads(sink: Simulator) -> None:
    op(sink, "storage", "put", key="k", value=1)
    sink.switches.quota_exceeded = True
    assert op(sink, "storage", "put", key="k", value=2) == {"error": "quota.exceeded"}
    assert op(sink, "storage", "get", key="k") == {"value": 1}


def test_notify_goes_to_the_residents_inbox(sink: Simulator) -> None:
    message_id = op(sink, "notify", "send", title="Queue number", body="You are number 7")["value"]
    # as production: only a resident who used the app can be messaged (or charged) by it
    refused = op(sink, "notify", "send", title="For grandpa", body="", user_id=sink.user_id("grandpa"))
    assert refused == {"error": "capability.invalid_argument"}
    assert sink.get("/whoami", user="grandpa").status == 200
    op(sink, "notify", "send", title="For grandpa", body="", user_id=sink.user_id("grandpa"))
    assert [(m["id"], m["title"]) for m in sink.inbox("alice")] == [(message_id, "Queue number")]
    assert [m["title"] for m in sink.inbox("grandpa")] == ["For grandpa"]
    assert op(sink, "notify", "send", title="x" * 41, body="") == {"error": "capability.invalid_argument"}


def test_payments_wait_for_the_residents_confirmation_as_in_production(sink: Simulator) -> None:
    charge: dict[str, Any] = {"amount_fen": 200, "reason": "bus fare", "idempotency_key": "ride-1"}
    first = op(sink, "payments", "charge", **charge)["value"]
    assert first["status"] == "pending_confirmation" and sink.platform.balance("alice") == 10_000
    assert op(sink, "payments", "charge", **charge)["value"] == first  # a retry never charges twice
    assert op(sink, "payments", "charge", **{**charge, "amount_fen": 300}) == {
        "error": "capability.invalid_argument"
    }
    sink.confirm_payment(first["id"])
    assert op(sink, "payments", "status", payment_id=first["id"])["value"]["status"] == "succeeded"
    assert sink.platform.balance("alice") == 10_000 - 200
    # the explicit switches: confirmed at once, declined at once, refused by the one-card
    sink.switches.payment_confirmation = "auto"
    assert (
        op(sink, "payments", "charge", **{**charge, "idempotency_key": "r2"})["value"]["status"]
        == "succeeded"
    )
    sink.switches.payment_confirmation = "decline"
    assert (
        op(sink, "payments", "charge", **{**charge, "idempotency_key": "r3"})["value"]["status"] == "declined"
    )
    sink.switches.payment_confirmation = "auto"
    sink.switches.payment_failure = True
    assert (
        op(sink, "payments", "charge", **{**charge, "idempotency_key": "r4"})["value"]["status"] == "failed"
    )
    sink.switches.payment_failure = False
    assert op(sink, "payments", "charge", user="carol", **charge)["value"]["status"] == "failed"  # empty card
    assert op(sink, "payments", "charge", user=None, **charge) == {"error": "consent.denied"}


def test_the_refund_switch_leaves_the_refund_owed(sink: Simulator) -> None:
    charge: dict[str, Any] = {"amount_fen": 500, "reason": "ticket", "idempotency_key": "t-1"}
    paid = op(sink, "payments", "charge", **charge)["value"]
    sink.confirm_payment(paid["id"])
    refund = {"payment_id": paid["id"], "amount_fen": 500, "reason": "cancelled", "idempotency_key": "back-1"}
    sink.switches.refund_failure = True  # the one-card service down: nothing refunded
    assert op(sink, "payments", "refund", **refund) == {"error": "capability.failed"}
    assert sink.platform.balance("alice") == 10_000 - 500
    sink.switches.refund_failure = False
    assert op(sink, "payments", "refund", **refund)["value"]["refunded_fen"] == 500
    assert sink.platform.balance("alice") == 10_000


def forge(payload: str) -> str:
    """The payload with one signature character changed (one that carries whole bits, not padding)."""
    position = len(payload) - 10
    return payload[:position] + ("B" if payload[position] == "A" else "A") + payload[position + 1 :]


def test_app_pass_issue_verify_revoke_expire(sink: Simulator) -> None:
    ticket = op(
        sink, "credentials", "issue_pass", kind="ticket", data={"slot": "09:00"}, valid_until=NOW + 3600
    )["value"]
    payload = ticket["payload"]
    assert payload.startswith("YP1.")  # the production format, signed with the simulator's dev key
    verified = op(sink, "credentials", "verify", payload=payload)["value"]
    assert verified["valid"] and verified["kind"] == "app_pass" and verified["data"] == {"slot": "09:00"}
    assert verified["user_id"] == sink.user_id("alice") and verified["pass_id"] == ticket["id"]
    assert (
        op(sink, "credentials", "verify", payload=forge(payload))["value"]["reason"]
        == "credential.bad_signature"
    )
    assert op(sink, "credentials", "verify", payload="hello")["value"]["reason"] == "credential.malformed"
    with Simulator(APPS / "other") as other:  # a pass of another app's simulator: not its key
        answer = other.platform.credentials.verify(payload, other.user_id, lambda name: True)
        assert answer.reason == "credential.unknown_key"
    assert op(sink, "credentials", "revoke_pass", pass_id=ticket["id"]) == {"value": True}
    assert op(sink, "credentials", "revoke_pass", pass_id=ticket["id"]) == {"value": False}
    assert op(sink, "credentials", "verify", payload=payload)["value"]["reason"] == "credential.revoked"
    code = sink.ankang_code("carol")
    assert code.startswith("YA:")  # the production Ankang code format
    # carol never used this app: the code is valid but does not name her to it
    assert op(sink, "credentials", "verify", payload=code)["value"]["user_id"] is None
    sink.get("/whoami", user="carol")
    answer = op(sink, "credentials", "verify", payload=code)["value"]
    # now named; her colour stays hidden: the app does not ask for the health_color scope
    assert (answer["valid"], answer["user_id"], answer["health_color"]) == (True, sink.user_id("carol"), None)
    sink.clock[0] += 3600  # type: ignore[attr-defined]
    assert op(sink, "credentials", "verify", payload=code)["value"]["reason"] == "credential.expired"


def test_ankang_code_verifies_on_a_terminal_trusting_the_simulators_trust_list(
    sink: Simulator, tmp_path: Path
) -> None:
    from yima_sdk.terminal import Terminal

    terminal = Terminal(
        root_public_keys=sink.platform.credentials.root_public_keys,
        db_path=str(tmp_path / "terminal.db"),
        clock=lambda: sink.clock[0],  # type: ignore[attr-defined]
        clock_source="ntp",
    )
    try:
        terminal.load_trust_list(sink.platform.credentials.trust_list_envelope)
        decision = terminal.scan(sink.ankang_code("grandpa"))
        assert decision.result == "accept", decision
        assert decision.code is not None and decision.code.colour == "green"
    finally:
        terminal.close()


def test_scan_handlers_get_typed_data_and_must_answer_lines(sink: Simulator) -> None:
    scan_id, scanned_at, mode, amount = sink.scan("bus", mode="offline", amount_fen=200)
    assert scan_id.startswith("sim-scan-") and scanned_at == "2026-01-01T00:00:00+00:00"
    assert (mode, amount) == ("offline", "200")
    # a scan does not introduce a resident to an app: grandpa is anonymous to it until he calls it
    with pytest.raises(ConsentDenied):
        sink.scan("clinic", user="grandpa", scene_id="c-1")
    sink.get("/whoami", user="grandpa")
    assert sink.scan("clinic", user="grandpa", scene_id="c-1") == ["born 1948-02-01", "at c-1"]
    with pytest.raises(BadScanReply) as caught:
        sink.scan("scenic")
    assert "booked" in caught.value.message  # says what is wrong, where production shows nothing


def test_typed_body_answers_400_naming_the_field(sink: Simulator) -> None:
    assert sink.post("/typed", json={"day": "2026-03-02"}).json() == {"day": "2026-03-02", "seats": 1}
    refused = sink.post("/typed", json={"day": "2026-03-02", "seats": "two"})
    assert refused.status == 400 and refused.json()["code"] == "request.invalid"
    assert "$.seats" in refused.json()["detail"]


def test_user_ids_have_the_production_format(sink: Simulator) -> None:
    user_id = sink.user_id("alice")
    assert re.fullmatch(r"u_[a-z2-7]{26}", user_id), user_id


def test_positional_arguments_are_refused(sink: Simulator) -> None:
    assert sink.get("/positional").json() == {"error": "capability.invalid_argument"}


def test_log_is_kept_by_the_host(sink: Simulator) -> None:
    op(sink, "log", "info", event="checked in", slot=3)
    assert sink.logs[-1]["event"] == "checked in" and sink.logs[-1]["slot"] == 3


def test_undeclared_capability_is_refused() -> None:
    with Simulator(APPS / "other") as other:
        assert other.get("/store").json() == {"error": "capability.denied"}
        assert other.get("/scope").json() == {"error": "capability.denied"}


def test_overrun_crash_and_error_are_contained(sink: Simulator) -> None:
    first_pid = sink.worker_pid
    overrun = sink.get("/sleep")
    # the gateway's answers (one mapping: yima_sdk.errors.gateway_answer), the worker's code beside them
    assert overrun.status == 504 and overrun.json()["code"] == "miniapp.timeout"
    assert overrun.json()["app_code"] == "sandbox.deadline_exceeded"
    assert sink.get("/whoami").json()["pid"] != first_pid  # replaced
    crashed = sink.get("/crash")
    assert crashed.status == 502 and crashed.json()["code"] == "miniapp.crashed"
    boom = sink.get("/boom")
    assert (
        boom.status == 502
        and boom.json()["code"] == "miniapp.failed"
        and boom.json()["app_code"] == "miniapp.error"
    )
    assert "ValueError" in boom.json()["detail"]
    assert sink.get("/nowhere").status == 404


async def test_load_failure_is_reported(tmp_path: Path) -> None:
    (tmp_path / "miniapp.toml").write_text('id = "test.yima.broken"\nname = "Broken"\nversion = "1.0.0"\n')
    (tmp_path / "app.py").write_text("import no_such_module\n")
    os.chmod(tmp_path, 0o755)  # as root the app runs under its own uid
    simulator = AsyncSimulator(tmp_path)
    with pytest.raises(Exception) as caught:
        await simulator.start()
    assert getattr(caught.value, "code", "") == "miniapp.load_failed"
    assert "no_such_module" in str(caught.value)
    await simulator.close()


MEET = """
import asyncio, os
from yima_sdk import App

app = App()


@app.get("/meet")
async def meet(ctx, request):
    # answers once the other call arrived too: only two calls running side by side both answer
    await ctx.storage.counter_add("arrived")
    while await ctx.storage.counter_get("arrived") < 2:
        await asyncio.sleep(0.005)
    return {"pid": os.getpid()}
"""


@pytest.mark.parametrize("workers", [1, 2])
async def test_calls_run_side_by_side_up_to_the_manifests_workers(tmp_path: Path, workers: int) -> None:
    """As production's pool: with `limits.workers = 2` two calls of one app run at once, each in its own worker
    (a race between two deliveries can be reproduced here); with one worker the second call waits for the first."""
    (tmp_path / "miniapp.toml").write_text(
        'id = "test.yima.meet"\nname = "Meet"\nversion = "1.0.0"\ncapabilities = ["storage"]\n'
        f"[limits]\ntimeout_ms = 1000\nworkers = {workers}\n"
    )
    (tmp_path / "app.py").write_text(MEET)
    os.chmod(tmp_path, 0o755)  # as root the app runs under its own uid
    async with AsyncSimulator(tmp_path) as simulator:
        first, second = await asyncio.gather(*(simulator.request("GET", "/meet") for _ in range(2)))
    if workers == 2:
        assert (first.status, second.status) == (200, 200)
        assert first.json()["pid"] != second.json()["pid"]
    else:  # the first waits for a second call that cannot start before it ends
        assert first.json()["code"] == "miniapp.timeout" and second.status == 200


HOLD = """
import asyncio, os
from yima_sdk import App

app = App()
running = 0  # the calls this worker is running


@app.get("/hold")
async def hold(ctx, request):
    global running
    running += 1
    try:
        await asyncio.sleep(0.5)
        await ctx.storage.counter_add("held")
        return {}
    finally:
        running -= 1


@app.get("/meet")
async def meet(ctx, request):
    # answers once the other call arrived too, as MEET
    global running
    alongside = running
    running += 1
    try:
        await ctx.storage.counter_add("arrived")
        while await ctx.storage.counter_get("arrived") < 2:
            await asyncio.sleep(0.005)
        return {"pid": os.getpid(), "alongside": alongside, "held": await ctx.storage.counter_get("held")}
    finally:
        running -= 1
"""


async def test_a_call_whose_caller_went_away_runs_to_its_end_before_its_worker_serves_another(
    tmp_path: Path,
) -> None:
    """As production's pool: a caller cancelled while its call runs (a client that hung up) does not free the
    worker. The call runs to its end, its capability requests served, and only then does its worker take the
    next call: the `limits.workers` calls made right after run side by side, each alone in its worker."""
    (tmp_path / "miniapp.toml").write_text(
        'id = "test.yima.hold"\nname = "Hold"\nversion = "1.0.0"\ncapabilities = ["storage"]\n'
        "[limits]\ntimeout_ms = 5000\nworkers = 2\n"
    )
    (tmp_path / "app.py").write_text(HOLD)
    os.chmod(tmp_path, 0o755)  # as root the app runs under its own uid
    async with AsyncSimulator(tmp_path) as simulator:
        with pytest.raises(TimeoutError):  # the caller gives up while the app works
            await asyncio.wait_for(simulator.request("GET", "/hold"), 0.1)
        first, second = await asyncio.gather(*(simulator.request("GET", "/meet") for _ in range(2)))
    assert (first.status, second.status) == (200, 200)
    assert first.json()["pid"] != second.json()["pid"]
    assert (first.json()["alongside"], second.json()["alongside"]) == (0, 0)  # not sent to a busy worker
    # the second met the first once the cancelled call had ended: its storage write served, not refused
    assert (first.json()["held"], second.json()["held"]) == (1, 1)


SHIPPED_EVIL = """
from yima_sdk import App

app = App()


@app.get("/ok")
async def ok(ctx, request):
    return {"reviewed": False}
"""


def test_shipped_bytecode_never_runs_in_place_of_the_source_as_in_production(tmp_path: Path) -> None:
    """Production imports an app only from its .py sources (sandbox/worker.py); so does the simulator, so that
    an app working here does not depend on bytecode the platform refuses to run."""
    folder = tmp_path / "shipped_bytecode"
    shutil.copytree(APPS / "shipped_bytecode", folder)
    (tmp_path / "evil.py").write_text(SHIPPED_EVIL)
    py_compile.compile(
        str(tmp_path / "evil.py"),
        cfile=importlib.util.cache_from_source(str(folder / "app.py")),
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    (tmp_path / "extra.py").write_text("VALUE = 'never reviewed'\n")
    py_compile.compile(str(tmp_path / "extra.py"), cfile=str(folder / "extra.pyc"))
    for path in [tmp_path, folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # as root the app runs under its own uid
    with Simulator(folder) as simulator:
        assert simulator.get("/ok").json() == {"reviewed": True}
        extra = simulator.get("/extra")
        assert extra.status == 502 and "No module named 'extra'" in extra.json()["detail"], extra.text
    # and the worker wrote no bytecode of its own beside the source
    assert [p.name for p in (folder / "__pycache__").iterdir()] == [
        Path(importlib.util.cache_from_source(str(folder / "app.py"))).name
    ]
