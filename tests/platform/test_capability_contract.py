"""One capability contract, two platforms: every operation of `yima_sdk.contract`, its happy path and each error
it documents, run in the same order against the server's provider (real PostgreSQL, real keys, a released app)
and against the SDK's simulator; both must give the same replies (ids masked) and the same error codes.

Adding an operation: add its Struct to the contract, a provider method to both platforms, and a case here
(`test_every_operation_and_documented_error_has_a_case` fails until there is one).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import msgspec
import pytest
from yima_sdk import contract as c
from yima_sdk.errors import YimaError, status_for_code
from yima_sdk.manifest import load_manifest
from yima_sdk.simulator import AsyncSimulator, SimulatedPlatform

from sandbox.capabilities import CallInfo
from tests.conftest import Session, login, valid_id_number
from tests.onecard.helpers import Resident, fund, issue_card
from tests.platform.conftest import Team, call, new_app_id, write_probe

ALICE_BORN = "19900514"  # the simulator's fixture alice was born on 1990-05-14
CLINIC = "clinic:guangde-people-1"
SPOT = "spot:taiji-cave"
NEW_YEAR = 1767196800  # 2026-01-01 00:00 county time
FARE_TABLE = {"version": 1, "effective_from": "2026-01-01T00:00:00+08:00",
              "lines": {"1": {"name": "1路", "flat_fen": 200}}}  # fmt: skip
_NOT_SHARED = {"valid": False, "reason": "credential.share_not_consented", "kind": "", "user_id": None,
               "health_color": None, "pass_id": None, "data": {}, "issuer_app": None}  # fmt: skip


@dataclass(frozen=True)
class Case:
    """One request: `op` with `kwargs` (or a function of what earlier cases saved) as resident `user`.
    `error`: the error class expected; else `expect` (the masked reply) when given. `save`: remember the
    reply for later cases. `before`: a platform switch to flip first (the same on both platforms)."""

    name: str
    op: str
    kwargs: dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]] = field(default_factory=dict)
    user: str | None = "alice"
    error: type[YimaError] | None = None
    expect: Any = ...
    save: str = ""
    before: str = ""
    args: tuple[Any, ...] = ()


CASES: list[Case] = [
    # storage
    Case("put creates", "storage.put", {"key": "doc", "value": {"n": 1}, "expected_version": 0}, expect=1),
    Case("put with a stale version", "storage.put", {"key": "doc", "value": 2, "expected_version": 0},
         error=c.VersionConflict),
    Case("put with an empty key", "storage.put", {"key": "", "value": 1}, error=c.InvalidArgument),
    Case("put over the key quota", "storage.put", {"key": "doc2", "value": 1}, error=c.QuotaExceeded,
         before="storage_quota_1"),
    Case("put replaces", "storage.put", {"key": "doc", "value": {"n": 2}, "expected_version": 1}, expect=2,
         before="storage_quota_1000"),
    Case("get", "storage.get", {"key": "doc"}, expect={"n": 2}),
    Case("get a missing key", "storage.get", {"key": "nothing"}, expect=None),
    Case("get a control character key", "storage.get", {"key": "a\x01"}, error=c.InvalidArgument),
    Case("get_document", "storage.get_document", {"key": "doc"},
         expect={"key": "doc", "value": {"n": 2}, "version": 2}),
    Case("get_document missing", "storage.get_document", {"key": "nothing"}, expect=None),
    Case("delete stale", "storage.delete", {"key": "doc", "expected_version": 5}, error=c.VersionConflict),
    Case("delete", "storage.delete", {"key": "doc", "expected_version": 2}, expect=True),
    Case("delete again", "storage.delete", {"key": "doc"}, expect=False),
    *[Case(f"put trip:{i}", "storage.put", {"key": f"trip:{i}", "value": i}, expect=1) for i in range(3)],
    Case("list a page", "storage.list", {"prefix": "trip:", "limit": 2}, save="page",
         expect={"items": [{"key": "trip:0", "value": 0, "version": 1}, {"key": "trip:1", "value": 1, "version": 1}],
                 "cursor": "trip:1"}),
    Case("list the next page", "storage.list", lambda s: {"prefix": "trip:", "limit": 2, "cursor": s["page"]["cursor"]},
         expect={"items": [{"key": "trip:2", "value": 2, "version": 1}], "cursor": None}),
    Case("list with limit 0", "storage.list", {"limit": 0}, error=c.InvalidArgument),
    Case("counter_add", "storage.counter_add", {"name": "slots", "delta": 1, "max": 1}, expect=1),
    Case("counter_add past max", "storage.counter_add", {"name": "slots", "delta": 1, "max": 1},
         error=c.CounterOutOfRange),
    Case("counter_add a bool delta", "storage.counter_add", {"name": "slots", "delta": True},
         error=c.InvalidArgument),
    Case("counter_get", "storage.counter_get", {"name": "slots"}, expect=1),
    Case("counter_add a new counter over the key quota", "storage.counter_add", {"name": "more"},
         error=c.QuotaExceeded, before="storage_quota_4"),
    Case("counter_add an existing counter at the quota", "storage.counter_add", {"name": "slots", "delta": -1},
         expect=0),
    Case("counter_get untouched", "storage.counter_get", {"name": "other"}, expect=0,
         before="storage_quota_1000"),
    # terminals: documents for the terminals of the app's scenes
    Case("terminals publish", "terminals.publish", {"name": "notice", "version": 1, "effective_from": NEW_YEAR,
                                                    "content": {"text": "春运加班车"}},
         expect={"name": "notice", "version": 1, "effective_from": NEW_YEAR}),
    Case("terminals publish the same version again", "terminals.publish",
         {"name": "notice", "version": 1, "effective_from": NEW_YEAR, "content": {"text": "春运加班车"}},
         expect={"name": "notice", "version": 1, "effective_from": NEW_YEAR}),
    Case("terminals publish a version again with other content", "terminals.publish",
         {"name": "notice", "version": 1, "effective_from": NEW_YEAR, "content": {"text": "changed"}},
         error=c.VersionConflict),
    Case("terminals publish a second version that would take effect in the past", "terminals.publish",
         {"name": "notice", "version": 2, "effective_from": NEW_YEAR + 60, "content": {"text": "改价"}},
         error=c.InvalidArgument),
    Case("terminals publish a bad name", "terminals.publish",
         {"name": "Notice!", "version": 1, "effective_from": NEW_YEAR, "content": {}}, error=c.InvalidArgument),
    Case("terminals publish a fares document that is no fare table", "terminals.publish",
         {"name": "fares", "version": 1, "effective_from": NEW_YEAR, "content": {"lines": 1}},
         error=c.InvalidArgument),
    Case("terminals publish a fare table under another version", "terminals.publish",
         {"name": "fares", "version": 2, "effective_from": NEW_YEAR, "content": FARE_TABLE},
         error=c.InvalidArgument),
    Case("terminals publish a fare table", "terminals.publish",
         {"name": "fares", "version": 1, "effective_from": NEW_YEAR, "content": FARE_TABLE},
         expect={"name": "fares", "version": 1, "effective_from": NEW_YEAR}),
    Case("terminals publish past the versions quota", "terminals.publish",
         {"name": "notice", "version": 2, "effective_from": NEW_YEAR + 60, "content": {}},
         error=c.QuotaExceeded, before="documents_quota_1"),
    Case("terminals published", "terminals.published", {"name": "notice"},
         expect=[{"name": "notice", "version": 1, "effective_from": NEW_YEAR}], before="documents_quota_200"),
    Case("terminals published a bad name", "terminals.published", {"name": ""}, error=c.InvalidArgument),
    # terminals: lists for the terminals of one staff unit (yima_sdk.lists)
    Case("terminals hold", "terminals.hold", lambda s: {"list": "gate", "unit": SPOT, "key": "t.1",
                                                        "value": {"people": 2}, "expires_at": s["soon"]},
         expect=lambda s: {"list": "gate", "unit": SPOT, "key": "t.1", "valid_from": 0, "expires_at": s["soon"],
                           "bound": False, "pass_id": None}),
    Case("terminals hold the same entry again", "terminals.hold",
         lambda s: {"list": "gate", "unit": SPOT, "key": "t.1", "value": {"people": 2}, "expires_at": s["soon"]},
         expect=lambda s: {"list": "gate", "unit": SPOT, "key": "t.1", "valid_from": 0, "expires_at": s["soon"],
                           "bound": False, "pass_id": None}),
    Case("terminals hold an entry bound to a resident and a pass", "terminals.hold",
         lambda s: {"list": "gate", "unit": SPOT, "key": "t.2", "expires_at": s["soon"], "user_id": s["alice_id"],
                    "pass_id": "pass_7", "valid_from": s["soon"] - 60},
         expect=lambda s: {"list": "gate", "unit": SPOT, "key": "t.2", "valid_from": s["soon"] - 60,
                           "expires_at": s["soon"], "bound": True, "pass_id": "pass_7"}),
    Case("terminals hold for a resident who never used the app", "terminals.hold",
         lambda s: {"list": "gate", "unit": SPOT, "key": "t.3", "expires_at": s["soon"], "user_id": s["stranger_id"]},
         error=c.InvalidArgument),
    Case("terminals hold an entry expired already", "terminals.hold",
         {"list": "gate", "unit": SPOT, "key": "t.3", "expires_at": NEW_YEAR}, error=c.InvalidArgument),
    Case("terminals hold too big a value", "terminals.hold",
         lambda s: {"list": "gate", "unit": SPOT, "key": "t.3", "value": {"x": "y" * 600}, "expires_at": s["soon"]},
         error=c.InvalidArgument),
    Case("terminals hold a bound entry for more than 7 days", "terminals.hold",
         lambda s: {"list": "gate", "unit": SPOT, "key": "t.3", "expires_at": s["soon"] + 8 * 86400,
                    "user_id": s["alice_id"]}, error=c.InvalidArgument),
    Case("terminals hold at a unit that is no unit", "terminals.hold",
         lambda s: {"list": "gate", "unit": "taiji", "key": "t.3", "expires_at": s["soon"]}, error=c.InvalidArgument),
    Case("terminals hold past the entries quota", "terminals.hold",
         lambda s: {"list": "gate", "unit": SPOT, "key": "t.3", "expires_at": s["soon"]}, error=c.QuotaExceeded,
         before="lists_quota_2"),
    Case("terminals hold a held entry anew at the quota", "terminals.hold",
         lambda s: {"list": "gate", "unit": SPOT, "key": "t.1", "value": {"people": 3}, "expires_at": s["soon"]},
         expect=lambda s: {"list": "gate", "unit": SPOT, "key": "t.1", "valid_from": 0, "expires_at": s["soon"],
                           "bound": False, "pass_id": None}),
    Case("terminals drop", "terminals.drop", {"list": "gate", "unit": SPOT, "key": "t.1"}, expect=True,
         before="lists_quota_10000"),
    Case("terminals drop again", "terminals.drop", {"list": "gate", "unit": SPOT, "key": "t.1"}, expect=False),
    Case("terminals drop at another unit", "terminals.drop", {"list": "gate", "unit": "spot:other", "key": "t.2"},
         expect=False),
    Case("terminals drop a bad list name", "terminals.drop", {"list": "Gate!", "unit": SPOT, "key": "t.2"},
         error=c.InvalidArgument),
    # db: collections with declared indexes (the probe declares bookings: day, user_id, [doctor_id, day])
    Case("db insert", "db.insert", {"collection": "bookings", "id": "b1",
                                    "value": {"day": "2026-03-02", "doctor_id": "d1", "fee": 500}},
         expect={"id": "b1", "version": 1}),
    Case("db insert a new id", "db.insert", {"collection": "bookings", "value": {"day": "2026-02-28"}},
         expect={"id": "DOC_ID", "version": 1}),
    Case("db insert an existing id", "db.insert", {"collection": "bookings", "id": "b1", "value": {}},
         error=c.VersionConflict),
    Case("db insert a list", "db.insert", {"collection": "bookings", "value": [1]}, error=c.InvalidArgument),
    Case("db insert an object in an indexed field", "db.insert",
         {"collection": "bookings", "value": {"day": {"d": 1}}}, error=c.InvalidArgument),
    Case("db insert into an undeclared collection", "db.insert", {"collection": "visits", "value": {}},
         error=c.NotIndexed),
    Case("db insert over the key quota", "db.insert", {"collection": "bookings", "value": {}},
         error=c.QuotaExceeded, before="storage_quota_1"),
    Case("db get", "db.get", {"collection": "bookings", "id": "b1"},
         expect={"id": "b1", "value": {"day": "2026-03-02", "doctor_id": "d1", "fee": 500}, "version": 1},
         before="storage_quota_1000"),
    Case("db get a missing id", "db.get", {"collection": "bookings", "id": "nothing"}, expect=None),
    Case("db get an undeclared collection", "db.get", {"collection": "visits", "id": "b1"}, error=c.NotIndexed),
    Case("db update", "db.update", {"collection": "bookings", "id": "b1", "expected_version": 1,
                                    "value": {"day": "2026-03-03", "doctor_id": "d1", "fee": 500}}, expect=2),
    Case("db update stale", "db.update", {"collection": "bookings", "id": "b1", "expected_version": 1,
                                          "value": {}}, error=c.VersionConflict),
    Case("db update a missing id", "db.update", {"collection": "bookings", "id": "nothing", "value": {}},
         error=c.VersionConflict),
    Case("db update too big", "db.update", {"collection": "bookings", "id": "b1", "value": {"x": "y" * 70_000}},
         error=c.InvalidArgument),
    Case("db update an undeclared collection", "db.update", {"collection": "visits", "id": "b1", "value": {}},
         error=c.NotIndexed),
    Case("db delete stale", "db.delete", {"collection": "bookings", "id": "b1", "expected_version": 1},
         error=c.VersionConflict),
    Case("db delete", "db.delete", {"collection": "bookings", "id": "b1", "expected_version": 2}, expect=True),
    Case("db delete again", "db.delete", {"collection": "bookings", "id": "b1"}, expect=False),
    Case("db delete an undeclared collection", "db.delete", {"collection": "visits", "id": "b1"},
         error=c.NotIndexed),
    *[Case(f"db insert booking {i}", "db.insert",
           {"collection": "bookings", "id": f"k{i}",
            "value": {"day": f"2026-03-0{1 + i % 3}", "doctor_id": f"d{i % 2}", "fee": 100 * i}},
           expect={"id": f"k{i}", "version": 1}) for i in range(6)],
    Case("db find by equality", "db.find", {"collection": "bookings", "where": {"day": "2026-03-02"}},
         expect={"items": [{"id": "k1", "value": {"day": "2026-03-02", "doctor_id": "d1", "fee": 100},
                            "version": 1},
                           {"id": "k4", "value": {"day": "2026-03-02", "doctor_id": "d0", "fee": 400},
                            "version": 1}], "cursor": None}),
    Case("db find a range, newest first, a page", "db.find",
         {"collection": "bookings", "where": {"doctor_id": "d0", "day": {"gte": "2026-03-01", "lt": "2026-03-04"}},
          "order_by": "-day", "limit": 2}, save="db_page"),
    Case("db find the next page", "db.find",
         lambda s: {"collection": "bookings", "where": {"doctor_id": "d0", "day": {"gte": "2026-03-01",
                    "lt": "2026-03-04"}}, "order_by": "-day", "limit": 2, "after": s["db_page"]["cursor"]}),
    Case("db find in", "db.find", {"collection": "bookings", "where": {"day": {"in": ["2026-03-03", "2026-03-01"]}},
                                   "limit": 100}),
    Case("db find on an unindexed field", "db.find", {"collection": "bookings", "where": {"fee": 500}},
         error=c.NotIndexed),
    Case("db find ordered by an unindexed field", "db.find", {"collection": "bookings", "order_by": "fee"},
         error=c.NotIndexed),
    Case("db find with an unknown operator", "db.find",
         {"collection": "bookings", "where": {"day": {"like": "2026%"}}}, error=c.InvalidArgument),
    Case("db find after a cursor of another query", "db.find",
         lambda s: {"collection": "bookings", "where": {"day": "2026-03-01"}, "after": s["db_page"]["cursor"]},
         error=c.InvalidArgument),
    Case("db count", "db.count", {"collection": "bookings", "where": {"day": {"gt": "2026-03-01"}}}, expect=4),
    Case("db count on an unindexed field", "db.count", {"collection": "bookings", "where": {"fee": 1}},
         error=c.NotIndexed),
    Case("db aggregate", "db.aggregate", {"collection": "bookings", "group_by": "day", "sum": "fee"},
         expect=[{"key": "2026-02-28", "count": 1, "sum": 0}, {"key": "2026-03-01", "count": 2, "sum": 300}, {"key": "2026-03-02", "count": 2, "sum": 500},
                 {"key": "2026-03-03", "count": 2, "sum": 700}]),
    Case("db aggregate by an unindexed field", "db.aggregate", {"collection": "bookings", "group_by": "fee"},
         error=c.NotIndexed),
    Case("db commit a slot and a booking", "db.commit",
         {"writes": [{"kind": "counter_add", "name": "db-slots", "max": 1},
                     {"kind": "insert", "collection": "bookings", "id": "t1", "value": {"day": "2026-03-09"}},
                     {"kind": "update", "collection": "bookings", "id": "k0", "value": {"day": "2026-03-09"}}],
          "reads": [{"collection": "bookings", "id": "k0", "version": 1}]}, expect=[1, 1, 2]),
    Case("db commit past the counter's max", "db.commit",
         {"writes": [{"kind": "insert", "collection": "bookings", "id": "t2", "value": {}},
                     {"kind": "counter_add", "name": "db-slots", "max": 1}]}, error=c.CounterOutOfRange),
    Case("db commit after a read changed", "db.commit",
         {"writes": [{"kind": "insert", "collection": "bookings", "id": "t2", "value": {}}],
          "reads": [{"collection": "bookings", "id": "k0", "version": 1}]}, error=c.VersionConflict),
    Case("db commit over the key quota", "db.commit",
         {"writes": [{"kind": "insert", "collection": "bookings", "id": "t2", "value": {}}]},
         error=c.QuotaExceeded, before="storage_quota_1"),
    Case("db commit a bad value", "db.commit",
         {"writes": [{"kind": "insert", "collection": "bookings", "id": "t2", "value": "text"}]},
         error=c.InvalidArgument, before="storage_quota_1000"),
    Case("db commit to an undeclared collection", "db.commit",
         {"writes": [{"kind": "delete", "collection": "visits", "id": "t2"}]}, error=c.NotIndexed),
    Case("db nothing was written by the refused commits", "db.find",
         {"collection": "bookings", "where": {"day": "2026-03-09"}},
         expect={"items": [{"id": "k0", "value": {"day": "2026-03-09"}, "version": 2},
                           {"id": "t1", "value": {"day": "2026-03-09"}, "version": 1}], "cursor": None}),
    Case("db counter after the commits", "storage.counter_get", {"name": "db-slots"}, expect=1),
    # keyword arguments only, known operations only
    Case("positional arguments", "storage.get", args=("doc",), error=c.InvalidArgument),
    Case("an unknown argument", "storage.get", {"key": "doc", "colour": "red"}, error=c.InvalidArgument),
    Case("the removed user.get", "user.get", error=c.CapabilityDenied),
    # user
    Case("id", "user.id", expect="u_ID"),
    Case("id anonymous", "user.id", user=None, expect=None),
    Case("scope consented", "user.scope", {"name": "birth_date"}, expect="1990-05-14"),
    Case("scope not consented", "user.scope", {"name": "birth_date"}, user="carol", error=c.ConsentDenied),
    Case("scope not declared", "user.scope", {"name": "phone_masked"}, error=c.CapabilityDenied),
    Case("scope unknown", "user.scope", {"name": "id_number"}, error=c.InvalidArgument),
    Case("residence: registered there", "user.scope", {"name": "registered_in:341822"}, expect="true"),
    Case("residence: not registered there", "user.scope", {"name": "registered_in:320481"}, expect="false"),
    Case("residence not consented", "user.scope", {"name": "registered_in:341822"}, user="carol",
         error=c.ConsentDenied),
    Case("residence not declared", "user.scope", {"name": "registered_in:330522"}, error=c.CapabilityDenied),
    Case("residence without a county", "user.scope", {"name": "registered_in:34"}, error=c.InvalidArgument),
    # notify
    Case("send", "notify.send", {"title": "Queue number", "body": "You are number 7"}, expect="msg_N"),
    Case("send an empty title", "notify.send", {"title": "", "body": ""}, error=c.InvalidArgument),
    Case("send anonymously to nobody", "notify.send", {"title": "t", "body": ""}, user=None,
         error=c.InvalidArgument),
    *[Case(f"send {i}", "notify.send", {"title": "t", "body": ""}, user="carol", expect="msg_N")
      for i in range(20)],
    Case("send the 21st of the day", "notify.send", {"title": "t", "body": ""}, user="carol",
         error=c.QuotaExceeded),
    # notify and payments reach only residents who used the app: a code they showed does not link them to it
    Case("send to a resident who never used the app", "notify.send",
         lambda s: {"title": "t", "body": "", "user_id": s["stranger_id"]}, error=c.InvalidArgument),
    # payments
    Case("charge", "payments.charge", {"amount_fen": 200, "reason": "bus fare", "idempotency_key": "ride-1"},
         save="payment", expect={"id": "pay_N", "status": "pending_confirmation", "amount_fen": 200,
                                 "reason": "bus fare", "idempotency_key": "ride-1"}),
    Case("charge again", "payments.charge", {"amount_fen": 200, "reason": "bus fare", "idempotency_key": "ride-1"},
         expect={"id": "pay_N", "status": "pending_confirmation", "amount_fen": 200, "reason": "bus fare",
                 "idempotency_key": "ride-1"}),
    Case("charge a used key another amount", "payments.charge",
         {"amount_fen": 300, "reason": "bus fare", "idempotency_key": "ride-1"}, error=c.InvalidArgument),
    Case("charge a resident who never used the app", "payments.charge",
         {"amount_fen": 200, "reason": "r", "idempotency_key": "k"}, user="stranger", error=c.InvalidArgument),
    Case("charge anonymously", "payments.charge", {"amount_fen": 200, "reason": "r", "idempotency_key": "k"},
         user=None, error=c.ConsentDenied),
    Case("charge nothing", "payments.charge", {"amount_fen": 0, "reason": "r", "idempotency_key": "k"},
         error=c.InvalidArgument),
    Case("status", "payments.status", lambda s: {"payment_id": s["payment"]["id"]},
         expect={"id": "pay_N", "status": "pending_confirmation", "amount_fen": 200, "reason": "bus fare",
                 "idempotency_key": "ride-1"}),
    Case("status of nothing", "payments.status", {"payment_id": "pay_999999999"}, error=c.InvalidArgument),
    Case("status of a bad id", "payments.status", {"payment_id": "ride-1"}, error=c.InvalidArgument),
    Case("refund before the resident confirmed", "payments.refund",
         lambda s: {"payment_id": s["payment"]["id"], "amount_fen": 50, "reason": "r", "idempotency_key": "c-1"},
         error=c.InvalidArgument),
    Case("charge a booking's fee", "payments.charge", {"amount_fen": 300, "reason": "fee", "idempotency_key": "b-1"},
         save="withdrawn"),
    Case("cancel before the resident confirmed", "payments.cancel", lambda s: {"payment_id": s["withdrawn"]["id"]},
         expect={"id": "pay_N", "status": "cancelled", "amount_fen": 300, "reason": "fee", "idempotency_key": "b-1"}),
    Case("cancel again", "payments.cancel", lambda s: {"payment_id": s["withdrawn"]["id"]},
         expect={"id": "pay_N", "status": "cancelled", "amount_fen": 300, "reason": "fee", "idempotency_key": "b-1"}),
    Case("refund a cancelled payment", "payments.refund",
         lambda s: {"payment_id": s["withdrawn"]["id"], "amount_fen": 300, "reason": "r", "idempotency_key": "w-1"},
         error=c.InvalidArgument),
    Case("cancel nothing", "payments.cancel", {"payment_id": "pay_999999999"}, error=c.InvalidArgument),
    Case("cancel a ride", "payments.cancel", {"payment_id": "ride_0190b0f4-8e1c-7000-8000-000000000000"},
         error=c.InvalidArgument),
    Case("refund of nothing", "payments.refund",
         {"payment_id": "pay_999999999", "amount_fen": 50, "reason": "r", "idempotency_key": "c-1"},
         error=c.InvalidArgument),
    Case("refund of a ride no terminal of this app's scene settled", "payments.refund",
         {"payment_id": "ride_0190b0f4-8e1c-7000-8000-000000000000", "amount_fen": 50, "reason": "r",
          "idempotency_key": "c-1"}, error=c.InvalidArgument),
    Case("refund", "payments.refund", lambda s: {"payment_id": s["payment"]["id"], "amount_fen": 150,
                                                 "reason": "visit cancelled", "idempotency_key": "c-1"},
         before="payment_confirmed", expect={"payment_id": "pay_N", "amount_fen": 150, "refunded_fen": 150}),
    Case("cancel a payment the resident confirmed", "payments.cancel", lambda s: {"payment_id": s["payment"]["id"]},
         expect={"id": "pay_N", "status": "succeeded", "amount_fen": 200, "reason": "bus fare",
                 "idempotency_key": "ride-1"}),
    Case("the cancelled payment stayed cancelled", "payments.status", lambda s: {"payment_id": s["withdrawn"]["id"]},
         expect={"id": "pay_N", "status": "cancelled", "amount_fen": 300, "reason": "fee", "idempotency_key": "b-1"}),
    Case("refund again", "payments.refund", lambda s: {"payment_id": s["payment"]["id"], "amount_fen": 150,
                                                       "reason": "visit cancelled", "idempotency_key": "c-1"},
         expect={"payment_id": "pay_N", "amount_fen": 150, "refunded_fen": 150}),
    Case("refund a used key another amount", "payments.refund",
         lambda s: {"payment_id": s["payment"]["id"], "amount_fen": 10, "reason": "r", "idempotency_key": "c-1"},
         error=c.InvalidArgument),
    Case("refund more than is left", "payments.refund",
         lambda s: {"payment_id": s["payment"]["id"], "amount_fen": 51, "reason": "r", "idempotency_key": "c-2"},
         error=c.InvalidArgument),
    Case("refund the rest", "payments.refund",
         lambda s: {"payment_id": s["payment"]["id"], "amount_fen": 50, "reason": "r", "idempotency_key": "c-2"},
         expect={"payment_id": "pay_N", "amount_fen": 50, "refunded_fen": 200}),
    # credentials
    Case("issue_pass", "credentials.issue_pass",
         lambda s: {"kind": "ticket", "data": {"slot": "09:00"}, "valid_until": s["valid_until"]}, save="pass",
         expect=lambda s: {"id": "pass_N", "kind": "ticket", "payload": "YP1.", "valid_until": s["valid_until"]}),
    Case("issue_pass in the past", "credentials.issue_pass", {"kind": "ticket", "data": {}, "valid_until": 1},
         error=c.InvalidArgument),
    Case("issue_pass too much data", "credentials.issue_pass",
         lambda s: {"kind": "t", "data": {"x": "y" * 600}, "valid_until": s["valid_until"]},
         error=c.InvalidArgument),
    Case("verify the pass", "credentials.verify", lambda s: {"payload": s["pass"]["payload"]},
         expect=lambda s: {"valid": True, "reason": "", "kind": "app_pass", "user_id": "u_ID", "health_color": None,
                           "pass_id": "pass_N", "data": {"slot": "09:00"}, "issuer_app": s["app_id"]}),
    Case("verify a forged pass", "credentials.verify", lambda s: {"payload": _forge(s["pass"]["payload"])},
         expect={"valid": False, "reason": "credential.bad_signature", "kind": "", "user_id": None,
                 "health_color": None, "pass_id": None, "data": {}, "issuer_app": None}),
    Case("verify nonsense", "credentials.verify", {"payload": "hello"},
         expect={"valid": False, "reason": "credential.malformed", "kind": "", "user_id": None,
                 "health_color": None, "pass_id": None, "data": {}, "issuer_app": None}),
    Case("verify an Ankang code", "credentials.verify", lambda s: {"payload": s["ankang_code"]},
         expect={"valid": True, "reason": "", "kind": "ankang_code", "user_id": "u_ID", "health_color": None,
                 "pass_id": None, "data": {}, "issuer_app": None}),  # the colour only under a granted health_color scope
    Case("verify the Ankang code of a resident who never used the app", "credentials.verify",
         lambda s: {"payload": s["stranger_code"]},
         expect={"valid": True, "reason": "", "kind": "ankang_code", "user_id": None, "health_color": None,
                 "pass_id": None, "data": {}, "issuer_app": None}),
    Case("revoke_pass", "credentials.revoke_pass", lambda s: {"pass_id": s["pass"]["id"]}, expect=True),
    Case("revoke_pass again", "credentials.revoke_pass", lambda s: {"pass_id": s["pass"]["id"]}, expect=False),
    Case("verify a revoked pass", "credentials.verify", lambda s: {"payload": s["pass"]["payload"]},
         expect={"valid": False, "reason": "credential.revoked", "kind": "", "user_id": None,
                 "health_color": None, "pass_id": None, "data": {}, "issuer_app": None}),
    Case("revoke_pass a bad id", "credentials.revoke_pass", {"pass_id": "ticket-1"}, error=c.InvalidArgument),
    # jobs
    Case("schedule", "jobs.schedule", lambda s: {"at": s["soon"], "name": "release_slot", "data": {"slot": 3}},
         save="job", expect="job_N"),
    Case("schedule with a key", "jobs.schedule", lambda s: {"at": s["soon"], "name": "remind", "key": "k-1"},
         expect="job_N"),
    Case("schedule the same key again", "jobs.schedule",
         lambda s: {"at": s["soon"], "name": "remind", "key": "k-1"}, expect="job_N", before="jobs_pending_2"),
    Case("schedule over the pending cap", "jobs.schedule", lambda s: {"at": s["soon"], "name": "remind"},
         error=c.QuotaExceeded),
    Case("schedule past 30 days", "jobs.schedule", lambda s: {"at": s["soon"] + 31 * 86400, "name": "remind"},
         error=c.InvalidArgument, before="jobs_pending_1000"),
    Case("schedule too much data", "jobs.schedule",
         lambda s: {"at": s["soon"], "name": "remind", "data": {"x": "y" * 5000}}, error=c.InvalidArgument),
    Case("schedule a bad name", "jobs.schedule", lambda s: {"at": s["soon"], "name": "Remind me"},
         error=c.InvalidArgument),
    Case("schedule after a delay", "jobs.schedule", {"delay_s": 3600, "name": "remind"}, expect="job_N"),
    Case("schedule both at and a delay", "jobs.schedule", lambda s: {"at": s["soon"], "delay_s": 1, "name": "r"},
         error=c.InvalidArgument),
    Case("cancel", "jobs.cancel", lambda s: {"job_id": s["job"]}, expect=True),
    Case("cancel again", "jobs.cancel", lambda s: {"job_id": s["job"]}, expect=False),
    Case("cancel a bad id", "jobs.cancel", {"job_id": "release_slot"}, error=c.InvalidArgument),
    # passes another app shares with this one ([share_passes_with]), honoured on the holder's consent only
    Case("verify a shared pass the holder never consented to share", "credentials.verify",
         lambda s: {"payload": s["shared_pass"]}, expect=_NOT_SHARED),
    Case("verify a shared pass after the holder consented", "credentials.verify",
         lambda s: {"payload": s["shared_pass"]}, before="share_granted",
         expect=lambda s: {"valid": True, "reason": "", "kind": "app_pass", "user_id": "u_ID", "health_color": None,
                           "pass_id": "pass_N", "data": {"drug": "amoxicillin"}, "issuer_app": s["issuer_app"]}),
    Case("verify a shared pass after the holder revoked the share", "credentials.verify",
         lambda s: {"payload": s["shared_pass"]}, before="share_revoked", expect=_NOT_SHARED),
    # staff roles
    Case("staff of a resident", "user.staff", expect={"roles": []}),
    Case("staff anonymous", "user.staff", user=None, expect={"roles": []}),
    Case("staff granted", "user.staff", before="staff_granted",
         expect={"roles": [{"role": "doctor", "unit": None}, {"role": "doctor", "unit": "clinic:guangde-people-1"}]}),
    Case("staff of another resident", "user.staff", user="carol", expect={"roles": []}),
    Case("staff revoked", "user.staff", before="staff_revoked",
         expect={"roles": [{"role": "doctor", "unit": "clinic:guangde-people-1"}]}),
]  # fmt: skip


def _forge(payload: str) -> str:
    # one signature character changed, far from the end (whose last character is partly padding)
    at = len(payload) - 10
    return payload[:at] + ("B" if payload[at] == "A" else "A") + payload[at + 1 :]


_MASKS = [
    (re.compile(r"^pay_\d+$"), "pay_N"),
    (re.compile(r"^pass_\d+$"), "pass_N"),
    (re.compile(r"^msg_\d+$"), "msg_N"),
    (re.compile(r"^job_\d+$"), "job_N"),
    (re.compile(r"^u_[a-z2-7]{26}$"), "u_ID"),  # the production format of app-scoped ids, on both platforms
    (re.compile(r"^YP1\.[\w-]+\.[\w-]+$"), "YP1."),  # a signed pass in the production format
    (re.compile(r"^[a-z2-7]{24}$"), "DOC_ID"),  # a document id the platform made (capabilities.new_id)
]


def mask(value: Any) -> Any:
    """A reply with its platform-specific ids replaced by their shape."""
    if isinstance(value, dict):
        return {k: mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v) for v in value]
    if isinstance(value, str):
        for pattern, shape in _MASKS:
            if pattern.match(value):
                return shape
    return value


class Platform(Protocol):
    """What the contract test needs of a platform besides its provider."""

    app_id: str
    provider: Any
    users: dict[str | None, str | None]
    """Fixture name -> app-scoped id."""

    async def switch(self, name: str) -> None: ...


async def run(platform: Platform, case: Case, saved: dict[str, Any]) -> tuple[str, Any]:
    """("ok", masked reply as the SDK's typed facade would see it) or ("error", code, status)."""
    capability, _, operation = case.op.partition(".")
    kwargs = case.kwargs(saved) if callable(case.kwargs) else case.kwargs
    call = CallInfo(app_id=platform.app_id, version="1.0.0", call_id=1, user_id=platform.users[case.user])
    if case.before:
        await platform.switch(case.before)
    try:
        value = await platform.provider.handle(call, capability, operation, list(case.args), dict(kwargs))
    except YimaError as exc:
        return ("error", exc.code, status_for_code(exc.code))
    op_type = c.OPERATIONS[case.op]
    reply = msgspec.to_builtins(msgspec.convert(msgspec.to_builtins(value), op_type.Reply))
    return ("ok", reply)


@dataclass
class ServerPlatform:
    team: Team
    app_id: str
    provider: Any
    users: dict[str | None, str | None]
    alice: Session
    issuer_app: str
    alice_id_number: str

    async def switch(self, name: str) -> None:
        if name == "payment_confirmed":
            await self._pay_alices_payments()
            return
        if name.startswith("jobs_pending_"):
            self.provider.jobs.max_pending = int(name.rpartition("_")[2])
            return
        if name.startswith("documents_quota_"):
            self.provider.documents.max_versions = int(name.rpartition("_")[2])
            return
        if name.startswith("lists_quota_"):
            self.provider.lists.max_entries = int(name.rpartition("_")[2])
            return
        client, alice = self.team.client, self.alice
        share = f"/v1/me/consents/{self.issuer_app}/pass_share:{self.app_id}"
        staff = f"/v1/miniapps/{self.app_id}/staff"
        operator = self.team.operator.headers
        if name == "share_granted":
            r = await client.put(share, json={"granted": True}, headers=alice.headers)
        elif name == "share_revoked":
            r = await client.delete(share, headers=alice.headers)
        elif name == "staff_granted":
            for unit in (None, CLINIC):
                body = {"account_id": alice.account_id, "role": "doctor", "unit": unit}
                r = await client.post(staff, json=body, headers=operator)
                assert r.status_code == 201, r.text
        elif name == "staff_revoked":
            r = await client.delete(f"{staff}/{alice.account_id}/doctor", headers=operator)
        else:
            keys = int(name.rpartition("_")[2])
            r = await self.team.admin("PUT", f"/{self.app_id}/quotas", json={"storage_max_keys": keys})
        assert r.status_code < 300, r.text

    async def _pay_alices_payments(self) -> None:
        """Alice links and funds a one-card, then confirms her pending payments."""
        client, alice = self.team.client, self.alice
        number = await issue_card(client, self.alice_id_number)
        r = await client.post("/v1/me/onecard", json={"ss_card_number": number}, headers=alice.headers)
        assert r.status_code == 200, r.text
        await fund(client, Resident(alice, number), 1_000)
        for payment in (await client.get("/v1/me/payments", headers=alice.headers)).json():
            if payment["status"] == "pending_confirmation":
                r = await client.post(f"/v1/me/payments/{payment['id']}/confirm", headers=alice.headers)
                assert r.json()["status"] == "succeeded", r.text


@dataclass
class SimPlatform:
    app_id: str
    provider: SimulatedPlatform
    users: dict[str | None, str | None]
    issuer_app: str

    async def switch(self, name: str) -> None:
        if name == "payment_confirmed":
            for payment_id, payment in list(self.provider.payments.items()):
                if payment["status"] == "pending_confirmation":
                    self.provider.confirm_payment(payment_id)
            return
        if name.startswith("jobs_pending_"):
            self.provider.jobs_quota = int(name.rpartition("_")[2])
            return
        if name.startswith("documents_quota_"):
            self.provider.documents_quota = int(name.rpartition("_")[2])
            return
        if name.startswith("lists_quota_"):
            self.provider.lists.quota = int(name.rpartition("_")[2])
            return
        if name.startswith("share_"):
            self.provider.set_share_consent("alice", self.issuer_app, name == "share_granted")
        elif name == "staff_granted":
            self.provider.grant_staff("alice", "doctor")
            self.provider.grant_staff("alice", "doctor", CLINIC)
        elif name == "staff_revoked":
            self.provider.revoke_staff("alice", "doctor")
        else:
            self.provider.storage_quota = int(name.rpartition("_")[2])


async def _resident(team: Team, born: str, app_id: str, consent: bool) -> Session:
    return (await _resident_with_id(team, born, app_id, consent))[0]


async def _resident_with_id(team: Team, born: str, app_id: str, consent: bool) -> tuple[Session, str]:
    resident = await login(team.client)
    number = valid_id_number(birth=born, seq=f"{secrets.randbelow(1000):03d}")
    r = await team.client.put(
        "/v1/me/identity", json={"name": "李小红", "id_number": number}, headers=resident.headers
    )
    assert r.status_code == 200, r.text
    if consent:
        r = await team.client.put(
            f"/v1/me/consents/{app_id}/birth_date", json={"granted": True}, headers=resident.headers
        )
        assert r.status_code == 200, r.text
    return resident, number


async def _shared_pass(team: Team, tmp_path: Path, receiver: str, alice: Session) -> tuple[str, str]:
    """An app that shares its passes with `receiver` (as a clinic's e-prescriptions with a pharmacy), and the
    pass it issued to alice, who uses it: (issuing app id, pass payload)."""
    folder = write_probe(tmp_path, new_app_id("issuer"))
    with (folder / "miniapp.toml").open("a") as manifest:
        manifest.write(f'\n[share_passes_with]\n"{receiver}" = "Pharmacies redeem your e-prescriptions"\n')
    issuer, _ = await team.ship(folder)
    caps = team.client.app.state.platform.caps
    holder = await caps.seen(issuer, alice.account_id)
    call = CallInfo(app_id=issuer, version="1.0.0", call_id=1, user_id=holder)
    issued = await caps.handle(
        call,
        "credentials",
        "issue_pass",
        [],
        {"kind": "prescription", "data": {"drug": "amoxicillin"}, "valid_until": int(time.time()) + 3600},
    )
    return issuer, issued.payload


async def test_server_and_simulator_agree_on_every_operation(team: Team, tmp_path: Path) -> None:
    folder = write_probe(tmp_path, new_app_id("contract"), version="1.0.0")
    manifest = folder / "miniapp.toml"
    manifest.write_text(
        manifest.read_text().replace(
            "[scopes]\n",
            '[scopes]\n"registered_in:341822" = "Guangde residents pay half"\n'
            '"registered_in:320481" = "Liyang residents pay half"\n',
        )
    )
    app_id, _ = await team.ship(folder)
    caps = team.client.app.state.platform.caps
    alice, alice_id_number = await _resident_with_id(team, ALICE_BORN, app_id, consent=True)
    for scope in ("registered_in:341822", "registered_in:320481"):  # alice's ID card is Guangde's (341822...)
        r = await team.client.put(
            f"/v1/me/consents/{app_id}/{scope}", json={"granted": True}, headers=alice.headers
        )
        assert r.status_code == 200, r.text
    carol = await _resident(team, "20011130", app_id, consent=False)
    stranger = await _resident(team, "19480201", app_id, consent=False)
    issuer, shared_pass = await _shared_pass(team, tmp_path, app_id, alice)
    server = ServerPlatform(
        team,
        app_id,
        caps,
        {
            "alice": await caps.seen(app_id, alice.account_id),
            "carol": await caps.seen(app_id, carol.account_id),
            "stranger": caps.ids.for_app(app_id, stranger.account_id),  # never used the app
            None: None,
        },
        alice,
        issuer,
        alice_id_number,
    )
    simulated = SimulatedPlatform(load_manifest(folder))
    simulated.set_consent("carol", "birth_date", granted=False)
    simulated.set_consent("carol", "registered_in:341822", granted=False)
    for name in ("alice", "carol"):  # as caps.seen recorded their use of the app on the server
        simulated.use(simulated.user_id(name))
    simulated.set_share_consent("alice", issuer, granted=False)  # as on the server: never asked, not shared
    sim = SimPlatform(
        app_id,
        simulated,
        {
            "alice": simulated.user_id("alice"),
            "carol": simulated.user_id("carol"),
            "stranger": simulated.user_id("grandpa"),  # never used the app
            None: None,
        },
        issuer,
    )
    r = await team.client.get("/v1/me/codes/ankang", headers=alice.headers)
    assert r.status_code == 200, r.text
    r_stranger = await team.client.get("/v1/me/codes/ankang", headers=stranger.headers)
    assert r_stranger.status_code == 200, r_stranger.text
    valid_until = int(time.time()) + 3600
    saved_by = {
        "server": {
            "ankang_code": r.json()["payload"],
            "stranger_code": r_stranger.json()["payload"],
            "stranger_id": server.users["stranger"],
            "alice_id": server.users["alice"],
            "valid_until": valid_until,
            "soon": valid_until,
            "app_id": app_id,
            "issuer_app": issuer,
            "shared_pass": shared_pass,
        },
        "simulator": {
            "ankang_code": simulated.ankang_code("alice"),
            "stranger_code": simulated.ankang_code("grandpa"),
            "stranger_id": sim.users["stranger"],
            "alice_id": sim.users["alice"],
            "valid_until": valid_until,
            "soon": valid_until,
            "app_id": app_id,
            "issuer_app": issuer,
            "shared_pass": simulated.pass_from(issuer, "alice", "prescription", {"drug": "amoxicillin"}),
        },
    }
    disagreements = []
    for case in CASES:
        answers = {}
        for name, platform in (("server", server), ("simulator", sim)):
            answer = await run(platform, case, saved_by[name])  # type: ignore[arg-type]
            if answer[0] == "ok" and case.save:
                saved_by[name][case.save] = answer[1]
            answers[name] = (answer[0], mask(answer[1])) if answer[0] == "ok" else answer
        expected: tuple[Any, ...]
        if case.error is not None:
            expected = ("error", case.error.code, case.error.status)
        elif case.expect is ...:
            expected = answers["server"]
        else:
            expect = case.expect(saved_by["server"]) if callable(case.expect) else case.expect
            expected = ("ok", mask(expect))
        for name, answer in answers.items():
            if answer != expected:
                disagreements.append(
                    f"{case.name} ({case.op}) on the {name}: {answer!r}, expected {expected!r}"
                )
    assert not disagreements, "\n".join(disagreements)


def test_every_operation_and_documented_error_has_a_case() -> None:
    happy = {case.op for case in CASES if case.error is None}
    assert set(c.OPERATIONS) <= happy, f"no happy path for {sorted(set(c.OPERATIONS) - happy)}"
    for name, op in c.OPERATIONS.items():
        for error in op.errors:
            assert any(case.op == name and case.error is error for case in CASES), (
                f"{name} documents {error.code} but no case shows it"
            )


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"op": "storage.put", "kwargs": {"key": "k", "value": 1, "expected_version": 3}}, 409,
         "storage.version_conflict"),
        ({"op": "storage.counter_add", "kwargs": {"name": "n", "delta": 1, "max": 0}}, 409,
         "storage.counter_out_of_range"),
        ({"op": "storage.put", "kwargs": {"key": "", "value": 1}}, 400, "capability.invalid_argument"),
        ({"op": "user.scope", "kwargs": {"name": "phone_masked"}}, 403, "capability.denied"),
        ({"typed": {"day": "2026-03-02", "seats": "two"}}, 400, "request.invalid"),
    ],
)  # fmt: skip
async def test_an_uncaught_error_answers_the_same_status_through_the_gateway_and_the_simulator(
    team: Team, tmp_path: Path, body: dict[str, Any], status: int, code: str
) -> None:
    """The app lets the error escape: the gateway and the simulator answer the status its class carries."""
    folder = write_probe(tmp_path, new_app_id("uncaught"))
    app_id, _ = await team.ship(folder)
    resident = await login(team.client)
    if "typed" in body:
        path, payload = "/typed", body["typed"]
    else:
        path, payload = f"/raw/{body['op'].replace('.', '/')}", body["kwargs"]
    r = await call(team.client, resident, app_id, "POST", path, json=payload)
    assert (r.status_code, r.json()["code"]) == (status, code), r.text
    async with AsyncSimulator(folder) as simulator:
        answer = await simulator.request("POST", path, json=payload)
    assert (answer.status, answer.json()["code"]) == (status, code), answer.text
    if code == "request.invalid":
        assert "$.seats" in r.json()["detail"] and "$.seats" in answer.json()["detail"]


ANSWERS = """

@app.get("/answer/csv")
async def answer_csv(ctx: Context, request: Request) -> Response:
    return Response.csv([["day", "boxes", "note"], ["2026-03-02", -1, "=HYPERLINK(1)"]], filename="day.csv")


@app.get("/answer/page")
async def answer_page(ctx: Context, request: Request) -> Response:
    return Response(headers={"content-type": "text/html", "content-disposition": "inline",
                             "cache-control": "public, max-age=9999999"}, body=b"<script>1</script>")


@app.get("/answer/spoofed")
async def answer_spoofed(ctx: Context, request: Request) -> Response:
    return Response(headers={"content-type": "text/csv", "content-disposition":
                             'attachment; filename="../../etc/passwd"'}, body=b"a")
"""


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/answer/csv", {"content-type": "text/csv; charset=utf-8", "cache-control": "private, no-store",
                         "content-disposition": 'attachment; filename="day.csv"'}),
        ("/answer/page", {"content-type": "application/octet-stream", "cache-control": "private, max-age=86400"}),
        ("/answer/spoofed", {"content-type": "text/csv; charset=utf-8", "cache-control": "private, no-store"}),
    ],
)  # fmt: skip
async def test_an_apps_answer_carries_the_same_headers_through_the_gateway_and_the_simulator(
    team: Team, tmp_path: Path, path: str, expected: dict[str, str]
) -> None:
    """JSON, CSV (a download with a plain file name) or bytes, never a page: one rule for both platforms."""
    folder = write_probe(tmp_path, new_app_id("answers"))
    (folder / "app.py").write_text((folder / "app.py").read_text() + ANSWERS)
    app_id, _ = await team.ship(folder)
    resident = await login(team.client)
    r = await call(team.client, resident, app_id, "GET", path)
    async with AsyncSimulator(folder) as simulator:
        answer = await simulator.request("GET", path)
    wanted = {**expected, "x-content-type-options": "nosniff"}
    names = {"content-type", "cache-control", "content-disposition", "x-content-type-options"}
    assert {k: v for k, v in r.headers.items() if k in names} == wanted
    assert {k: v for k, v in answer.headers.items() if k in names} == wanted
    assert r.content == answer.body
    if path == "/answer/csv":  # the formula is text, not a formula; the number stays a number
        assert r.text.splitlines() == ["day,boxes,note", "2026-03-02,-1,'=HYPERLINK(1)"]
