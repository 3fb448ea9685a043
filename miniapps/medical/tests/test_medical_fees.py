"""The medical app's fee when a cancel lands while the booking is being charged: withdrawn if still pending,
refunded if already paid (against the simulator, the cancel sent from inside the charge)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from yima_sdk.cron import COUNTY_TIME
from yima_sdk.errors import CapabilityFailed
from yima_sdk.simulator import AsyncSimulator


async def booked_while_cancelled(sim: AsyncSimulator, *, first_charge_fails: bool) -> dict[str, Any]:
    """Alice books tomorrow's session of dr-chen (again, when its first charge fails: the booking made, no
    payment recorded) and cancels it as the charge is answered, before the app records the payment. The
    booking as the (last) booking request answered it."""
    sim.platform.schedule_job("seed", key="yima-dev-seed")
    assert [run.ok for run in await sim.advance(seconds=1) if run.name == "seed"] == [True]
    tomorrow = dt.datetime.fromtimestamp(sim.platform.clock(), COUNTY_TIME).date() + dt.timedelta(days=1)
    session = f"dr-chen.{tomorrow}.am"
    booking_id = f"{session}.{sim.user_id('alice')}"
    handle, charges = sim.platform.handle, []

    async def platform(call: Any, capability: str, operation: str, args: list[Any], kwargs: Any) -> Any:
        if (capability, operation) != ("payments", "charge"):
            return await handle(call, capability, operation, args, kwargs)
        charges.append(operation)
        if first_charge_fails and len(charges) == 1:
            raise CapabilityFailed("the one-card is not answering")
        payment = await handle(call, capability, operation, args, kwargs)
        cancelled = await sim.request("DELETE", f"/bookings/{booking_id}", user="alice")
        assert cancelled.json() == {"status": "cancelled", "refunded_fen": 0}  # nothing recorded to refund
        return payment

    sim.platform.handle = platform  # type: ignore[method-assign]
    if first_charge_fails:
        failed = await sim.request("POST", f"/sessions/{session}/book", user="alice")
        assert failed.status >= 500 and sim.platform.payments == {}
    answer = await sim.request("POST", f"/sessions/{session}/book", user="alice")
    assert answer.status in (200, 201) and len(charges) == 1 + first_charge_fails, answer.json()
    return answer.json()


async def test_a_booking_cancelled_as_its_retry_is_charged_leaves_nothing_to_pay(
    miniapp_folder: Path,
) -> None:
    """The cancel lands between the retry's read of the booking and its recording of the fee: the fee is
    withdrawn, not left for the resident to pay on a booking she can no longer cancel."""
    async with AsyncSimulator(miniapp_folder) as sim:
        balance = sim.platform.balance("alice")
        answer = await booked_while_cancelled(sim, first_charge_fails=True)
        # the confirmation sheet still open on her phone: confirming takes nothing
        [payment] = sim.platform.payments
        assert sim.platform.confirm_payment(payment)["status"] == "cancelled"
        assert sim.platform.balance("alice") == balance
        assert (answer["status"], answer["payment_id"]) == ("cancelled", None)


async def test_a_fee_paid_as_its_booking_is_cancelled_is_refunded(miniapp_folder: Path) -> None:
    """Alice confirms the fee at once (as the charge is answered) and cancels before the app records it:
    withdrawing the fee finds it paid, so it is refunded and shows on the cancelled booking."""
    async with AsyncSimulator(miniapp_folder) as sim:
        sim.switches.payment_confirmation = "auto"
        balance = sim.platform.balance("alice")
        answer = await booked_while_cancelled(sim, first_charge_fails=False)
        [payment] = sim.platform.payments.values()
        assert (payment["status"], payment.get("refunded_fen")) == ("succeeded", 1000)
        assert sim.platform.balance("alice") == balance
        assert (answer["status"], answer["payment_id"]) == ("cancelled", payment["id"])
