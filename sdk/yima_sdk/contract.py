"""The capability contract: every operation a mini-app can ask of the platform, as one msgspec Struct.

Each operation Struct is tagged `"<capability>.<operation>"` and holds

- its arguments, with their constraints (a value outside them is `InvalidArgument` naming the field),
- `Reply`: the type of its answer (the typed facades in `yima_sdk.capabilities` convert to it),
- `errors`: the yima_sdk errors it documents, each carrying its code and HTTP status once (`yima_sdk.errors`).

The app's facades build these Structs and send their fields as keyword arguments; every host's capability
provider (the server's, the simulator's, a test double) turns a request back into the same Struct with
`decode_operation`, which refuses positional arguments, unknown operations and bad arguments identically for
all of them. One contract test runs every operation against the server and the simulator.

Adding an operation: one Struct here (and in `Operation`), one provider method per host, one contract-test case.
Wire types evolve only by appending fields with defaults. `log` is not here: the host serves it itself.
What an app answers rather than asks (route headers, scan replies) is `yima_sdk._answers`, re-exported here.

Over 400 lines because it is the capability contract read as one document: every operation of every capability,
its arguments with their limits, its reply and its errors, next to the `Operation` union that lists them all, is
what a host's provider, the facades and the contract test are written against; split by capability, a reader
would open eight modules to learn the wire's shared rules (keyword-only, unknown fields refused, append-only).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, ClassVar, Literal

import msgspec

from yima_sdk._answers import (
    ANSWER_TYPES,
    BYTES_TYPE,
    MAX_LINE,
    MAX_LINES,
    MAX_PRIVATE_AGE_S,
    ScanReply,
    answer_headers,
    check_filename,
    scan_lines,
    scan_reply,
)
from yima_sdk._staff import UNIT_PATTERN
from yima_sdk.cron import COUNTY_TIME
from yima_sdk.errors import (
    CapabilityDenied,
    ConsentDenied,
    CounterOutOfRange,
    InvalidArgument,
    NotIndexed,
    QuotaExceeded,
    VersionConflict,
    YimaError,
)
from yima_sdk.fares import FareTable
from yima_sdk.manifest import JobName, ScanPreload, Scope

__all__ = [
    "ANSWER_TYPES",
    "BYTES_TYPE",
    "MAX_LINE",
    "MAX_LINES",
    "MAX_PRIVATE_AGE_S",
    "OPERATIONS",
    "AppPass",
    "CounterWrite",
    "CredentialsIssuePass",
    "CredentialsRevokePass",
    "CredentialsVerify",
    "DbAggregate",
    "DbCommit",
    "DbCount",
    "DbDelete",
    "DbFind",
    "DbGet",
    "DbInsert",
    "DbUpdate",
    "DeleteWrite",
    "Document",
    "DocumentVersion",
    "Group",
    "HeldEntry",
    "InsertWrite",
    "JobsCancel",
    "JobsSchedule",
    "NotifySend",
    "Operation",
    "Page",
    "Payment",
    "PaymentsCancel",
    "PaymentsCharge",
    "PaymentsRefund",
    "PaymentsStatus",
    "ReadCheck",
    "Record",
    "RecordPage",
    "Refund",
    "ScanReply",
    "StaffRole",
    "StaffRoles",
    "StorageCounterAdd",
    "StorageCounterGet",
    "StorageDelete",
    "StorageGet",
    "StorageGetDocument",
    "StorageList",
    "StoragePut",
    "TerminalsDrop",
    "TerminalsHold",
    "TerminalsPublish",
    "TerminalsPublished",
    "UpdateWrite",
    "UserId",
    "UserScope",
    "UserStaff",
    "Verification",
    "Written",
    "answer_headers",
    "check_document",
    "check_effective_from",
    "check_filename",
    "check_hold",
    "check_job",
    "check_pass",
    "decode_operation",
    "id_number",
    "job_retry_delay",
    "operation_name",
    "preload_finds",
    "reply_of",
    "scan_lines",
    "scan_reply",
]

MAX_KEY = 200
MAX_VALUE_BYTES = 64 * 1024
MAX_LIST = 100
MAX_TITLE, MAX_BODY = 40, 500
MAX_CHARGE_FEN = 1_000_000
MAX_PASS_DATA_BYTES = 512
MAX_JOB_DATA_BYTES = 4096
MAX_JOB_DELAY_S = 30 * 86400
MAX_DOCUMENT_BYTES = 64 * 1024
MAX_DOCUMENT_VERSIONS = 200
"""Versions of one terminal document an app may publish (each is kept: a ride is priced by the one in force)."""
JOB_ATTEMPTS = 5
"""Runs of one job (or one firing of a schedule) before the platform gives up on it."""
_BIG = 2**62  # storage integers fit PostgreSQL's bigint with room for a delta

Key = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_KEY, pattern=r"^[^\x00-\x1f\x7f]+$")]
"""A storage key or counter name: 1-200 characters without control characters."""
StorageInt = Annotated[int, msgspec.Meta(ge=-_BIG, le=_BIG)]
Version = Annotated[int, msgspec.Meta(ge=0, le=_BIG)]
ShortText = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
AppUserId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


# ---- replies --------------------------------------------------------------------------------------------


class _Reply(msgspec.Struct, frozen=True, kw_only=True):
    """Base of capability replies. Unknown fields are accepted on purpose: the platform appends fields with
    defaults, and an app built on an older SDK must keep working against a newer platform."""


class Document(_Reply, frozen=True):
    """One stored value with its version (1 after the first put, +1 per put)."""

    key: str
    value: Any
    version: int


class Page(_Reply, frozen=True):
    """A page of `storage.list`; pass `cursor` back to get the next page (None: no more)."""

    items: list[Document]
    cursor: str | None = None


class Payment(_Reply, frozen=True):
    """A one-card charge. `pending_confirmation`: the resident's super-app shows a confirmation sheet; ask
    `payments.status(id)` later. `succeeded`: money moved. `declined` (the resident said no), `failed` (the
    one-card refused: balance, frozen card) or `cancelled` (the app withdrew it before the resident
    confirmed: `payments.cancel`): nothing was charged."""

    id: str
    status: Literal["pending_confirmation", "succeeded", "declined", "failed", "cancelled"]
    amount_fen: int
    reason: str
    idempotency_key: str


class Refund(_Reply, frozen=True):
    """Money given back from a succeeded payment: this refund's `amount_fen` and `refunded_fen`, all refunded
    of the payment so far (never more than it charged)."""

    payment_id: str
    amount_fen: int
    refunded_fen: int


class AppPass(_Reply, frozen=True):
    """A pass the platform signed for this app (e.g. a scenic-spot ticket); `payload` is the QR text."""

    id: str
    kind: str
    payload: str
    valid_until: int
    """Unix seconds."""


class Verification(_Reply, frozen=True):
    """What `credentials.verify` learnt from a scanned payload; `reason` is a stable code when not valid."""

    valid: bool
    reason: str = ""
    """Empty when valid, else e.g. `credential.expired`, `credential.bad_signature`, `credential.malformed`."""
    kind: str = ""
    """`ankang_code`, `ride_code` or `app_pass`."""
    user_id: str | None = None
    """The holder's app-scoped id (never the resident's real id)."""
    health_color: str | None = None
    """green / yellow / red for Ankang codes."""
    pass_id: str | None = None
    """For this app's own passes."""
    data: dict[str, Any] = {}
    """For app passes: the data given to `issue_pass`."""
    issuer_app: str | None = None
    """For app passes: the app that issued it (another app's only when it shares its passes with this app and
    the holder consented to that share in the catalog; `pass_id` is then that app's id of the pass)."""


class StaffRole(_Reply, frozen=True):
    """One staff membership: a role of this app, held at one unit (`clinic:guangde-people-1`) or app-wide."""

    role: str
    unit: str | None = None
    """None: the role holds across the app, at every unit."""


class StaffRoles(_Reply, frozen=True):
    """The caller's staff roles in this app (`ctx.user.staff()`); empty for residents and anonymous calls."""

    roles: list[StaffRole] = []

    def has(self, role: str, unit: str | None = None) -> bool:
        """Holds `role` (at `unit`, when given: held there, or app-wide)."""
        return any(r.role == role and (unit is None or r.unit in (None, unit)) for r in self.roles)

    def units(self, role: str) -> list[str]:
        """The units where `role` is held (an app-wide grant is not listed: check `has(role, unit)`)."""
        return [r.unit for r in self.roles if r.role == role and r.unit is not None]


# ---- operations -----------------------------------------------------------------------------------------


class _Op(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="op"):
    """Base of operations: keyword-only (the wire carries names, never positions); unknown arguments refused
    so a typo is an error, not a silently ignored option; tagged so `Operation` decodes in one pass."""

    Reply: ClassVar[Any] = None
    """The type of the answer."""
    errors: ClassVar[tuple[type[YimaError], ...]] = ()
    """The errors this operation documents besides those any operation may raise."""


class StorageGet(_Op, frozen=True, tag="storage.get"):
    """The value stored under `key`, or None."""

    Reply = Any
    key: Key


class StorageGetDocument(_Op, frozen=True, tag="storage.get_document"):
    """The value with its version, or None."""

    Reply = Document | None
    key: Key


class StoragePut(_Op, frozen=True, tag="storage.put"):
    """Store `value` (JSON-able, at most 64 KiB encoded); the new version. `expected_version`: None writes
    unconditionally, 0 only creates, n only replaces version n."""

    Reply = int
    errors = (VersionConflict, QuotaExceeded, InvalidArgument)
    key: Key
    value: Any
    expected_version: Version | None = None


class StorageDelete(_Op, frozen=True, tag="storage.delete"):
    """Remove `key`; True if it existed."""

    Reply = bool
    errors = (VersionConflict,)
    key: Key
    expected_version: Version | None = None


class StorageList(_Op, frozen=True, tag="storage.list"):
    """Documents whose key starts with `prefix`, in key order, after `cursor`."""

    Reply = Page
    errors = (InvalidArgument,)
    prefix: Annotated[str, msgspec.Meta(max_length=MAX_KEY)] = ""
    cursor: Annotated[str, msgspec.Meta(max_length=MAX_KEY)] | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIST)] = 50


class StorageCounterAdd(_Op, frozen=True, tag="storage.counter_add"):
    """Atomically add `delta` to counter `name` (starting at 0) unless the result leaves [min, max]. A new
    counter is a key of the app's key quota."""

    Reply = int
    errors = (CounterOutOfRange, QuotaExceeded, InvalidArgument)
    name: Key
    delta: StorageInt = 1
    min: StorageInt | None = None
    max: StorageInt | None = None


class StorageCounterGet(_Op, frozen=True, tag="storage.counter_get"):
    """The counter's value (0 if never touched)."""

    Reply = int
    name: Key


class UserId(_Op, frozen=True, tag="user.id"):
    """The caller's app-scoped id, None when anonymous."""

    Reply = str | None


class UserScope(_Op, frozen=True, tag="user.scope"):
    """The value of a scope the resident consented to."""

    Reply = str
    errors = (ConsentDenied, CapabilityDenied, InvalidArgument)
    name: Scope


class UserStaff(_Op, frozen=True, tag="user.staff"):
    """The caller's staff roles in this app, with their units: only roles the manifest still declares."""

    Reply = StaffRoles


class NotifySend(_Op, frozen=True, tag="notify.send"):
    """A message in the inbox of `user_id` (default: the caller); the message id."""

    Reply = str
    errors = (InvalidArgument, QuotaExceeded)
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TITLE)]
    body: Annotated[str, msgspec.Meta(max_length=MAX_BODY)]
    user_id: AppUserId | None = None


class PaymentsCharge(_Op, frozen=True, tag="payments.charge"):
    """A one-card charge the resident confirms; the same key returns the same payment."""

    Reply = Payment
    errors = (ConsentDenied, InvalidArgument)
    amount_fen: Annotated[int, msgspec.Meta(ge=1, le=MAX_CHARGE_FEN)]
    reason: ShortText
    idempotency_key: ShortText


_REFUNDABLE_ID = r"^(pay_[0-9]{1,18}|ride_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$"
"""A refundable payment: a charge (`pay_12`) or a settled offline ride (`ride_<scan id>`)."""


class PaymentsStatus(_Op, frozen=True, tag="payments.status"):
    """The payment's current state."""

    Reply = Payment
    errors = (InvalidArgument,)
    payment_id: Annotated[str, msgspec.Meta(pattern=r"^pay_[0-9]{1,18}$")]


class PaymentsCancel(_Op, frozen=True, tag="payments.cancel"):
    """Withdraw a charge of this app the resident has not confirmed yet (the booking it paid for was
    cancelled): it ends `cancelled` and the resident can no longer confirm it. The reply is the payment as it
    now stands: `cancelled`, or what the resident decided first (`succeeded`: refund it instead; `declined`,
    `failed`: nothing was charged). Cancelling again answers the same."""

    Reply = Payment
    errors = (InvalidArgument,)
    payment_id: Annotated[str, msgspec.Meta(pattern=r"^pay_[0-9]{1,18}$")]


class PaymentsRefund(_Op, frozen=True, tag="payments.refund"):
    """Give back part or all of a succeeded payment of this app, once per `idempotency_key` (a retry returns
    the same refund); refunds together never exceed the charge. `payment_id` is a charge of this app
    (`pay_<n>`) or an offline ride that settlement charged at a terminal of this app's scene
    (`ride_<scan id>`, `ScanData.payment_id`): the app gives back what its own price of the ride is below the
    table's (a concession, a transfer, a cap)."""

    Reply = Refund
    errors = (InvalidArgument,)
    payment_id: Annotated[str, msgspec.Meta(pattern=_REFUNDABLE_ID)]
    amount_fen: Annotated[int, msgspec.Meta(ge=1, le=MAX_CHARGE_FEN)]
    reason: ShortText
    idempotency_key: ShortText


class CredentialsVerify(_Op, frozen=True, tag="credentials.verify"):
    """Check a scanned payload; never raises for a bad code (`valid` false, `reason` a stable code)."""

    Reply = Verification
    payload: str


class CredentialsIssuePass(_Op, frozen=True, tag="credentials.issue_pass"):
    """Sign a pass of `kind` carrying `data` (at most 512 bytes encoded) for `user_id` (default: the caller)
    until `valid_until` (Unix seconds, future, at most a year ahead)."""

    Reply = AppPass
    errors = (InvalidArgument,)
    kind: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    data: dict[str, Any]
    valid_until: int
    user_id: AppUserId | None = None


class CredentialsRevokePass(_Op, frozen=True, tag="credentials.revoke_pass"):
    """Revoke one of this app's passes; True if it was valid until now."""

    Reply = bool
    errors = (InvalidArgument,)
    pass_id: Annotated[str, msgspec.Meta(pattern=r"^pass_[0-9]{1,18}$")]


# ---- db: collections with declared indexes (yima_sdk.query holds the query rules) ------------------------

MAX_FIND = 100
MAX_COMMIT_WRITES = 50
MAX_GROUPS = 1000
CollectionName = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
FieldName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,39}$")]
OrderBy = Annotated[str, msgspec.Meta(pattern=r"^-?[A-Za-z_][A-Za-z0-9_]{0,39}$")]
DocId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]
"""A document id: 1-128 ASCII letters, digits and `_.:-` (the platform makes one when none is given)."""
Where = Annotated[dict[FieldName, Any], msgspec.Meta(max_length=8)]
Cursor = Annotated[str, msgspec.Meta(max_length=2000)]


class Record(_Reply, frozen=True):
    """One document of a collection with its id and version (1 when inserted, +1 per update)."""

    id: str
    value: dict[str, Any]
    version: int


class RecordPage(_Reply, frozen=True):
    """A page of `db.find`; pass `cursor` as `after` for the next page (None: no more)."""

    items: list[Record]
    cursor: str | None = None


class Written(_Reply, frozen=True):
    """What `db.insert` wrote: the document's id (given or made by the platform) and its version."""

    id: str
    version: int


class Group(_Reply, frozen=True):
    """One group of `db.aggregate`: the grouped field's value, how many documents, and the sum asked for."""

    key: Any
    count: int
    sum: int | float | None = None


class DbGet(_Op, frozen=True, tag="db.get"):
    """The document `id` of `collection`, or None."""

    Reply = Record | None
    errors = (NotIndexed,)
    collection: CollectionName
    id: DocId


class DbInsert(_Op, frozen=True, tag="db.insert"):
    """Insert `value` (a JSON object, at most 64 KiB encoded) as document `id` (default: a new id) at
    version 1. VersionConflict when the id exists."""

    Reply = Written
    errors = (NotIndexed, VersionConflict, QuotaExceeded, InvalidArgument)
    collection: CollectionName
    value: Any
    id: DocId | None = None


class DbUpdate(_Op, frozen=True, tag="db.update"):
    """Replace document `id` with `value`; the new version. `expected_version`: None replaces whatever is
    there, n only version n. VersionConflict when stale or when there is no such document."""

    Reply = int
    errors = (NotIndexed, VersionConflict, InvalidArgument)
    collection: CollectionName
    id: DocId
    value: Any
    expected_version: Version | None = None


class DbDelete(_Op, frozen=True, tag="db.delete"):
    """Remove document `id`; True if it existed."""

    Reply = bool
    errors = (NotIndexed, VersionConflict)
    collection: CollectionName
    id: DocId
    expected_version: Version | None = None


class DbFind(_Op, frozen=True, tag="db.find"):
    """Documents matching `where` (equality, {"gt"/"gte"/"lt"/"lte": v}, {"in": [...]}) on a declared index,
    sorted by `order_by` ("field" or "-field"; default: the index order), `limit` per page, after cursor
    `after`. NotIndexed when no declared index answers the query."""

    Reply = RecordPage
    errors = (NotIndexed, InvalidArgument)
    collection: CollectionName
    where: Where = {}
    order_by: OrderBy | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_FIND)] = 50
    after: Cursor | None = None


class DbCount(_Op, frozen=True, tag="db.count"):
    """How many documents match `where` (as `db.find`)."""

    Reply = int
    errors = (NotIndexed,)
    collection: CollectionName
    where: Where = {}


class DbAggregate(_Op, frozen=True, tag="db.aggregate"):
    """Documents matching `where` grouped by the indexed field `group_by`: per value, the count and (when
    `sum` names a field) the sum of its numbers; groups in index order, at most 1000."""

    Reply = list[Group]
    errors = (NotIndexed,)
    collection: CollectionName
    group_by: FieldName
    where: Where = {}
    sum: FieldName | None = None


class _Write(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="kind"):
    """One write of a `db.commit`."""


class InsertWrite(_Write, frozen=True, tag="insert"):
    collection: CollectionName
    id: DocId
    value: Any


class UpdateWrite(_Write, frozen=True, tag="update"):
    collection: CollectionName
    id: DocId
    value: Any
    expected_version: Version | None = None


class DeleteWrite(_Write, frozen=True, tag="delete"):
    collection: CollectionName
    id: DocId
    expected_version: Version | None = None


class CounterWrite(_Write, frozen=True, tag="counter_add"):
    """`storage.counter_add` inside the commit: the whole commit fails when it leaves [min, max]."""

    name: Key
    delta: StorageInt = 1
    min: StorageInt | None = None
    max: StorageInt | None = None


class ReadCheck(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A document the transaction read: the commit fails unless it is still at `version` (0: still absent)."""

    collection: CollectionName
    id: DocId
    version: Version


Write = InsertWrite | UpdateWrite | DeleteWrite | CounterWrite


class DbCommit(_Op, frozen=True, tag="db.commit"):
    """`ctx.db.transaction()`: apply `writes` in order, all or nothing, if every document in `reads` is still at
    the version read. Per write: the new version (insert, update), 1 or 0 (delete: existed or not), the
    counter's new value (counter_add). VersionConflict, CounterOutOfRange, QuotaExceeded: nothing written."""

    Reply = list[int]
    errors = (NotIndexed, VersionConflict, CounterOutOfRange, QuotaExceeded, InvalidArgument)
    writes: Annotated[list[Write], msgspec.Meta(min_length=1, max_length=MAX_COMMIT_WRITES)]
    reads: Annotated[list[ReadCheck], msgspec.Meta(max_length=MAX_COMMIT_WRITES)] = []


class JobsSchedule(_Op, frozen=True, tag="jobs.schedule"):
    """Run `@app.job(name)` with `data` (a JSON object of at most 4 KiB encoded) at `at` (Unix seconds) or
    `delay_s` seconds from now (exactly one of them; at most 30 days ahead; a time already past runs as soon as
    possible); the job id. The same `key` gives the same job: a retried call schedules once. At most the app's
    quota of one-shot jobs may be pending."""

    Reply = str
    errors = (InvalidArgument, QuotaExceeded)
    name: JobName
    at: Annotated[float, msgspec.Meta(ge=0)] | None = None
    delay_s: Annotated[float, msgspec.Meta(ge=0)] | None = None
    data: dict[str, Any] = {}
    key: ShortText | None = None


class JobsCancel(_Op, frozen=True, tag="jobs.cancel"):
    """Cancel one of this app's one-shot jobs; True if it was pending (it will not run)."""

    Reply = bool
    errors = (InvalidArgument,)
    job_id: Annotated[str, msgspec.Meta(pattern=r"^job_[0-9]{1,18}$")]


# ---- terminals: documents an app publishes for the terminals of its scenes ------------------------------

DocumentName = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,39}(?!\n)$")]
"""A terminal document's name (`fares`): lower case, digits, `_`; 1-40 characters."""
FARES_DOCUMENT = "fares"
"""The document the platform reads itself: a `yima_sdk.fares.FareTable` per version; terminals price offline
rides with it and settlement re-prices them with the version in force when they happened."""


class DocumentVersion(_Reply, frozen=True):
    """One published version of a terminal document: in force from `effective_from` (Unix seconds) until a
    later-effective version."""

    name: str
    version: int
    effective_from: int


class TerminalsPublish(_Op, frozen=True, tag="terminals.publish"):
    """Publish version `version` of document `name` for the terminals of this app's scenes: the platform signs
    it with its trust-list root, terminals fetch it with their trust list and apply the version in force at
    `effective_from` (Unix seconds). Versions are immutable: the same version again with the same content and
    time answers as the first time (a retried call); with other content, VersionConflict. `content` is a JSON
    object of at most 64 KiB; `fares` must be the `yima_sdk.fares.FareTable` of that version and time. A version
    after the first may not take effect in the past (`check_effective_from`): InvalidArgument.
    QuotaExceeded past 200 versions of one name."""

    Reply = DocumentVersion
    errors = (InvalidArgument, VersionConflict, QuotaExceeded)
    name: DocumentName
    version: Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]
    effective_from: Annotated[int, msgspec.Meta(ge=0, le=2**40)]
    content: dict[str, Any]


class TerminalsPublished(_Op, frozen=True, tag="terminals.published"):
    """The versions of document `name` this app has published, oldest effective first."""

    Reply = list[DocumentVersion]
    errors = (InvalidArgument,)
    name: DocumentName


# ---- terminals: lists an app holds for the terminals of one staff unit (yima_sdk.lists) ------------------

MAX_LIST_VALUE_BYTES = 512
"""An entry's value, encoded: what a gate needs to decide offline (the day, how many people), never personal data."""
MAX_LIST_ENTRIES = 10_000
"""Unexpired entries and tombstones (drops, synced until the entry would have expired) of one list at one unit
(a day's tickets of a large spot)."""
MAX_LIST_HORIZON_S = 30 * 86400
"""How far ahead an entry may expire."""
MAX_BOUND_WINDOW_S = 7 * 86400
"""How long an entry bound to a resident may count: its holder tags, one per code refresh period, are made when
it is held (a day of tags is ~11 KiB on a terminal)."""

ListName = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,39}(?!\n)$")]
"""A terminal list's name (`gate`): lower case, digits, `_`; 1-40 characters."""
UnitName = Annotated[str, msgspec.Meta(pattern=UNIT_PATTERN, max_length=100)]
"""A staff unit, `kind:id` (`spot:taiji-cave`): the terminals registered for it sync the list."""
ListKey = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")]


class HeldEntry(_Reply, frozen=True):
    """An entry of a terminal list as held: `bound` when it is bound to a resident (the terminals hold holder tags
    for it, never the resident's id)."""

    list: str
    unit: str
    key: str
    valid_from: int
    expires_at: int
    bound: bool = False
    pass_id: str | None = None


class TerminalsHold(_Op, frozen=True, tag="terminals.hold"):
    """Hold entry `key` of list `list` for the terminals of staff unit `unit` (the app's scenes' terminals
    registered for that unit sync it): `value` (a JSON object of at most 512 bytes), counting from `valid_from`
    (Unix seconds; default: from now) until `expires_at` (in the future, at most 30 days ahead). `user_id` binds it
    to that resident of the app: terminals find it from the resident's Ankang code (by holder tags, valid at most 7
    days); `pass_id` to one of the app's passes: terminals find it from that pass. Holding the same entry again is
    a no-op (retry freely); other content replaces it. InvalidArgument; QuotaExceeded past 10,000 live entries
    of one list at one unit."""

    Reply = HeldEntry
    errors = (InvalidArgument, QuotaExceeded)
    list: ListName
    unit: UnitName
    key: ListKey
    expires_at: Annotated[int, msgspec.Meta(ge=0, le=2**40)]
    value: dict[str, Any] = {}
    valid_from: Annotated[int, msgspec.Meta(ge=0, le=2**40)] | None = None
    user_id: AppUserId | None = None
    pass_id: Annotated[str, msgspec.Meta(pattern=r"^pass_[0-9]{1,18}$")] | None = None


class TerminalsDrop(_Op, frozen=True, tag="terminals.drop"):
    """Drop entry `key` of `list` at `unit` (a cancelled ticket): terminals forget it at their next sync. True if
    it was held (and not expired)."""

    Reply = bool
    errors = (InvalidArgument,)
    list: ListName
    unit: UnitName
    key: ListKey


Operation = (
    StorageGet
    | StorageGetDocument
    | StoragePut
    | StorageDelete
    | StorageList
    | StorageCounterAdd
    | StorageCounterGet
    | UserId
    | UserScope
    | UserStaff
    | NotifySend
    | PaymentsCharge
    | PaymentsStatus
    | PaymentsRefund
    | PaymentsCancel
    | CredentialsVerify
    | CredentialsIssuePass
    | CredentialsRevokePass
    | DbGet
    | DbInsert
    | DbUpdate
    | DbDelete
    | DbFind
    | DbCount
    | DbAggregate
    | DbCommit
    | JobsSchedule
    | JobsCancel
    | TerminalsPublish
    | TerminalsPublished
    | TerminalsHold
    | TerminalsDrop
)
"""Every capability operation, a tagged union on `op`."""

OPERATIONS: dict[str, type[_Op]] = {cls.__struct_config__.tag: cls for cls in Operation.__args__}  # type: ignore[attr-defined]
"""`"storage.put"` -> StoragePut, for every operation."""


def decode_operation(capability: str, operation: str, args: list[Any], kwargs: dict[str, Any]) -> Operation:
    """A capability request as its operation Struct. CapabilityDenied: no such operation; InvalidArgument:
    positional arguments, a missing, unknown or ill-typed argument (the message names it)."""
    name = f"{capability}.{operation}"
    kind = OPERATIONS.get(name)
    if kind is None:
        raise CapabilityDenied(f"{name} is not a capability operation of this platform")
    if args:
        raise InvalidArgument(f"{name} takes keyword arguments only")
    try:
        # Into the operation's own Struct, not the `Operation` union: msgspec caches a Struct's decoding plan on
        # the class, but works a union's out again on every call (22 µs for a db.commit, 2 µs this way).
        decoded: Operation = msgspec.convert(kwargs, kind)  # type: ignore[assignment]
    except msgspec.ValidationError as exc:
        raise InvalidArgument(f"{name}: {exc}") from None
    return decoded


def preload_finds(
    preloads: dict[str, ScanPreload], user_id: str | None, scanned_at: dt.datetime
) -> dict[str, DbFind]:
    """The finds a scan event's `[scan_preload]` asks for, as the app would send them (the same rules, quotas
    aside); those on `$user_id` only for a scan naming the resident. `$today`: the scan's day in county time."""
    today = scanned_at.astimezone(COUNTY_TIME).date().isoformat()
    finds = {}
    for name, preload in preloads.items():
        where = preload.where_at(user_id, today)
        if where is not None:
            finds[name] = DbFind(
                collection=preload.collection, where=where, order_by=preload.order_by, limit=preload.limit
            )
    return finds


def check_pass(op: CredentialsIssuePass, now: float) -> None:
    """The rules of `credentials.issue_pass` beyond its field types (they depend on the clock and the size of
    the encoded data, which goes into a QR code); InvalidArgument when broken."""
    if not now < op.valid_until <= now + 366 * 86400:
        raise InvalidArgument("valid_until must be a future Unix time in seconds, at most a year ahead")
    _encoded_data(op.data, MAX_PASS_DATA_BYTES)


def check_document(op: TerminalsPublish) -> bytes:
    """The rules of `terminals.publish` beyond its field types: the content encoded (compact JSON, as signed),
    at most 64 KiB, and a `fares` document a fare table of the same version and time; InvalidArgument when
    broken."""
    encoded = _encoded_data(op.content, MAX_DOCUMENT_BYTES)
    if op.name == FARES_DOCUMENT:
        table = FareTable.from_json(encoded)  # FareError is an InvalidArgument naming what is wrong
        if table.version != op.version or int(table.effective_from.timestamp()) != op.effective_from:
            raise InvalidArgument("a fares document is the fare table of the same version and effective_from")
    return encoded


PUBLISH_GRACE_S = 60
"""How far before the platform's clock a new version of a document may take effect (the clerk's "now")."""


def check_effective_from(op: TerminalsPublish, now: float, *, first: bool) -> None:
    """A version after the first takes effect from now on (PUBLISH_GRACE_S back at most): an offline ride taken
    under one version is never re-priced at settlement by a version published after it. InvalidArgument if not."""
    if not first and op.effective_from < now - PUBLISH_GRACE_S:
        raise InvalidArgument(
            f"{op.name} version {op.version} would take effect in the past: a new version takes effect from now on"
        )


def check_hold(op: TerminalsHold, now: float) -> bytes:
    """The rules of `terminals.hold` beyond its field types (they depend on the clock and the encoded size): the
    value encoded (compact JSON), or InvalidArgument."""
    if not now < op.expires_at <= now + MAX_LIST_HORIZON_S:
        raise InvalidArgument("expires_at must be a future Unix time in seconds, at most 30 days ahead")
    valid_from = op.valid_from or 0
    if valid_from >= op.expires_at:
        raise InvalidArgument("valid_from must come before expires_at")
    if op.user_id is not None and op.expires_at - max(valid_from, now) > MAX_BOUND_WINDOW_S:
        raise InvalidArgument(
            "an entry bound to a resident counts for at most 7 days (valid_from to expires_at)"
        )
    encoded = _encoded_data(op.value, MAX_LIST_VALUE_BYTES)
    return encoded


def check_job(op: JobsSchedule, now: float) -> tuple[float, bytes]:
    """The rules of `jobs.schedule` beyond its field types (they depend on the clock and the encoded size):
    InvalidArgument when broken, else when the job is due (Unix seconds) and its encoded data."""
    if (op.at is None) == (op.delay_s is None):
        raise InvalidArgument("jobs.schedule takes exactly one of at and delay_s")
    due = op.at if op.at is not None else now + (op.delay_s or 0.0)
    if not due <= now + MAX_JOB_DELAY_S:
        raise InvalidArgument("a job may be scheduled at most 30 days ahead")
    return due, _encoded_data(op.data, MAX_JOB_DATA_BYTES)


def _encoded_data(data: Any, limit: int) -> bytes:
    """An operation's free-form `data` as JSON, at most `limit` bytes; InvalidArgument otherwise."""
    try:
        encoded = msgspec.json.encode(data)
    except (TypeError, msgspec.EncodeError):
        raise InvalidArgument("data must be JSON-able") from None
    if len(encoded) > limit:
        raise InvalidArgument(f"data must be a JSON object of at most {limit} bytes")
    return encoded


def job_retry_delay(attempt: int, base_s: float = 30.0, max_s: float = 3600.0) -> float:
    """Seconds before a job that failed its `attempt`-th run runs again: base, 2x, 4x... at most `max_s`."""
    # The doubling stops at 2**64: past it any base above a nanosecond is beyond any max, and 2**1024 is no
    # float (OverflowError), which a count of tries that has no bound (the scan outbox's put-off ones) reaches.
    return float(min(max_s, base_s * 2 ** min(max(attempt - 1, 0), 64)))


def id_number(value: str) -> int:
    """The number in an id the contract already checked (`pay_12` -> 12, `pass_7` -> 7)."""
    return int(value.rpartition("_")[2])


def operation_name(op: _Op | type[_Op]) -> str:
    """`capability.operation` of an operation, e.g. `storage.put`."""
    return str(op.__struct_config__.tag)


def reply_of(op: _Op, value: Any) -> Any:
    """A provider's wire value as the operation's typed reply."""
    return msgspec.convert(value, op.Reply)
