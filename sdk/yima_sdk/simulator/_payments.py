"""The simulated `payments` capability: charges the resident confirms (or the switches answer for them), the
one-card balances they draw on, cancels, refunds, and the offline rides settlement charges."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

from yima_sdk import contract as c
from yima_sdk.errors import CapabilityFailed, ConsentDenied, InvalidArgument

if TYPE_CHECKING:
    from yima_sdk.simulator._platform import CallInfo, SimulatedPlatform

__all__ = ["SimulatedPayments"]


class SimulatedPayments:
    """`payments.*` operations of one simulated app (its payments are `platform.payments`, the balances
    `platform.balances`)."""

    def __init__(self, platform: SimulatedPlatform) -> None:
        self.platform = platform
        self._idempotency: dict[tuple[str, str], str] = {}
        self._refunds: dict[tuple[str, str], dict[str, Any]] = {}

    def status(self, op: c.PaymentsStatus) -> c.Payment:
        payment = self.platform.payments.get(op.payment_id)
        if payment is None:
            raise InvalidArgument(f"no payment {op.payment_id!r} for this app")
        return _payment(payment)

    def cancel(self, op: c.PaymentsCancel) -> c.Payment:
        payment = self.platform.payments.get(op.payment_id)
        if payment is None:
            raise InvalidArgument(f"no payment {op.payment_id!r} for this app")
        if payment["status"] == "pending_confirmation":
            payment["status"] = "cancelled"
        return _payment(payment)

    def confirm(self, payment_id: str, *, accept: bool = True) -> dict[str, Any]:
        """The simulated resident answers the confirmation sheet of a pending payment."""
        payment = self.platform.payments[payment_id]
        if payment["status"] == "pending_confirmation":
            if accept:
                self._settle(payment)
            else:
                payment["status"] = "declined"
        return dict(payment)

    def settled_ride(self, name: str, amount_fen: int) -> str:
        """Fixture resident `name`'s card pays an offline ride as settlement charges it; its refundable id."""
        self.platform.balances[name] -= amount_fen
        payment_id = f"ride_{uuid.uuid4()}"
        payment: dict[str, Any] = {
            "id": payment_id,
            "status": "succeeded",
            "amount_fen": amount_fen,
            "reason": "offline ride",
            "idempotency_key": "",
            "user_id": self.platform.user_id(name),
        }
        self.platform.payments[payment_id] = payment
        return payment_id

    def charge(self, call: CallInfo, op: c.PaymentsCharge) -> c.Payment:
        if call.user_id is None:
            raise ConsentDenied("an anonymous caller cannot be charged")
        self.platform._reachable(call.user_id)
        known = self._idempotency.get((str(call.user_id), op.idempotency_key))
        if known is not None:
            payment = self.platform.payments[known]
            if payment["amount_fen"] != op.amount_fen:
                raise InvalidArgument(f"idempotency_key {op.idempotency_key!r} was used for another amount")
            return _payment(payment)
        payment = {
            "id": f"pay_{self.platform.next_id()}",
            "status": "pending_confirmation",
            "amount_fen": op.amount_fen,
            "reason": op.reason,
            "idempotency_key": op.idempotency_key,
            "user_id": call.user_id,
        }
        self.platform.payments[payment["id"]] = payment
        self._idempotency[(str(call.user_id), op.idempotency_key)] = payment["id"]
        if self.platform.switches.payment_confirmation != "manual":
            self.confirm(payment["id"], accept=self.platform.switches.payment_confirmation == "auto")
        return _payment(payment)

    def refund(self, op: c.PaymentsRefund) -> c.Refund:
        payment = self.platform.payments.get(op.payment_id)
        if payment is None:
            raise InvalidArgument(f"no payment {op.payment_id!r} for this app")
        known = self._refunds.get((op.payment_id, op.idempotency_key))
        if known is not None:
            if (known["amount_fen"], known["reason"]) != (op.amount_fen, op.reason):
                raise InvalidArgument(f"idempotency_key {op.idempotency_key!r} was used for another refund")
            return c.Refund(
                payment_id=op.payment_id, amount_fen=known["amount_fen"], refunded_fen=known["refunded_fen"]
            )
        if payment["status"] != "succeeded":
            raise InvalidArgument(f"payment {op.payment_id!r} is {payment['status']}: nothing to refund")
        if self.platform.switches.refund_failure:
            raise CapabilityFailed("the one-card service is unreachable: nothing refunded")
        refunded = payment.get("refunded_fen", 0) + op.amount_fen
        if refunded > payment["amount_fen"]:
            raise InvalidArgument("refunds may not exceed what the payment charged")
        payment["refunded_fen"] = refunded
        at = dt.datetime.fromtimestamp(self.platform.clock(), dt.UTC)
        payment.setdefault("refunds", []).append(
            {"amount_fen": op.amount_fen, "refunded_at": at.isoformat(), "reason": op.reason}
        )
        resident = self.platform.resident(payment["user_id"])
        assert resident is not None
        self.platform.balances[resident.name] += op.amount_fen
        self._refunds[(op.payment_id, op.idempotency_key)] = {
            "amount_fen": op.amount_fen,
            "reason": op.reason,
            "refunded_fen": refunded,
        }
        return c.Refund(payment_id=op.payment_id, amount_fen=op.amount_fen, refunded_fen=refunded)

    def _settle(self, payment: dict[str, Any]) -> None:
        resident = self.platform.resident(payment["user_id"])
        assert resident is not None
        balance = self.platform.balances[resident.name]
        if self.platform.switches.payment_failure or balance < payment["amount_fen"]:
            payment["status"] = "failed"
            return
        self.platform.balances[resident.name] = balance - payment["amount_fen"]
        payment["status"] = "succeeded"


def _payment(payment: dict[str, Any]) -> c.Payment:
    return c.Payment(
        id=payment["id"],
        status=payment["status"],
        amount_fen=payment["amount_fen"],
        reason=payment["reason"],
        idempotency_key=payment["idempotency_key"],
    )
