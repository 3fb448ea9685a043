"""miniapp.toml: the mini-app manifest as msgspec Structs, and `load_manifest` that validates it field by field.

    id = "cn.gov.guangde.library"          # reverse-DNS, lower case
    name = "County library"
    version = "1.2.0"                       # semver
    entry = "app:app"                       # module:attribute of the `App` object, inside the app folder
    capabilities = ["storage", "log"]       # the only ways out of the sandbox; anything else is refused

    [limits]                                # each capped by the operator's ceilings
    memory_mb = 64
    cpu_ms = 1000
    timeout_ms = 2000
    workers = 2

    scenes = ["clinic"]                     # scan scene kinds it subscribes to: bus, clinic, pharmacy, scenic, counter

    [scopes]                                # resident data needing consent, each with its purpose (PIPL)
    birth_date = "Seniors ride free: we check your age"

    [staff.roles]                           # staff roles with their purpose (yima_sdk._staff)
    librarian = "Lends and takes back books at their branch"
    [staff.units]                           # kinds of units a role is held at: `branch:east-1`
    branch = "A branch library"
    [staff.routes]                          # only holders of the role may call these (403 before the app runs)
    "POST /loans" = "librarian"

    [share_passes_with]                     # apps that may honour this app's passes, if the resident consents
    "cn.gov.guangde.reading" = "Reading rooms let you in with your library card"

    [jobs]                                  # schedules in county time (UTC+8), five-field cron
    remind = "0 18 * * *"                   # runs `@app.job("remind")` every day at 18:00

    [collections.bookings]                  # ctx.db collections; queries only on declared indexes
    indexes = ["day", "user_id", ["doctor_id", "day"]]

    [scan_preload.clinic]                   # finds the platform runs before a scan event reaches the app:
    today = { collection = "bookings", where = { user_id = "$user_id", day = "$today" } }   # event.data.preloaded

The Structs forbid unknown fields so a typo fails loudly. Later fields (consent scopes, scan scenes) are appended
with defaults, so existing manifests keep validating. The consent scopes' own rules (real county codes, how many)
live in `yima_sdk._scopes`; their names are re-exported here.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from yima_sdk import query
from yima_sdk._scopes import (
    MAX_RESIDENCE_SCOPES,
    RESIDENCE_SCOPE,
    SCOPES,
    Scope,
    check_scopes,
    is_residence_scope,
)
from yima_sdk._staff import StaffTable
from yima_sdk.cron import CronError, parse_cron
from yima_sdk.errors import InvalidArgument, ManifestError, NotIndexed

__all__ = [
    "CAPABILITIES",
    "MAX_RESIDENCE_SCOPES",
    "RESIDENCE_SCOPE",
    "SCENES",
    "SCOPES",
    "Capability",
    "Collection",
    "JobName",
    "Limits",
    "Manifest",
    "ScanPreload",
    "Scene",
    "Scope",
    "is_residence_scope",
    "load_manifest",
    "parse_manifest",
]

MANIFEST_FILE = "miniapp.toml"

Capability = Literal["user", "storage", "credentials", "payments", "notify", "log", "db", "jobs", "terminals"]
CAPABILITIES: frozenset[str] = frozenset(Capability.__args__)  # type: ignore[attr-defined]

Scene = Literal["bus", "clinic", "pharmacy", "scenic", "counter"]
SCENES: frozenset[str] = frozenset(Scene.__args__)  # type: ignore[attr-defined]
"""Scan scene kinds a mini-app may subscribe to (`scenes = [...]`)."""

Purpose = Annotated[str, msgspec.Meta(min_length=4, max_length=200)]

JobName = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,39}(?!\n)$")]
"""A job's name (`@app.job(name)`, `[jobs]`, `ctx.jobs.schedule`): lower case, digits, `_`; 1-40 characters."""
MAX_SCHEDULES = 20

AppId = Annotated[
    str, msgspec.Meta(pattern=r"^[a-z][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*)+(?!\n)$", min_length=3, max_length=128)
]
SemVer = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?(?!\n)$"
    ),
]
Entry = Annotated[
    str,
    msgspec.Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*(?!\n)$"),
]

# Human hints for the regex-constrained fields: msgspec's own message quotes the regex, which helps nobody.
_HINTS = {
    "id": "a reverse-DNS id such as `cn.gov.guangde.library` (lower case, at least one dot)",
    "version": "a semantic version such as `1.2.0`",
    "entry": "`module:attribute`, such as `app:app`",
}


class _ManifestStruct(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Base for manifest tables: a misspelt key is an error, not silently ignored; parsed manifests are values."""


class Limits(_ManifestStruct, frozen=True):
    """Resource limits the app asks for; the sandbox host caps each by the operator's ceiling."""

    memory_mb: Annotated[int, msgspec.Meta(ge=16, le=4096)] = 64
    """Memory the app may use beyond the bare worker, in MiB (address-space limit and recycle threshold)."""
    cpu_ms: Annotated[int, msgspec.Meta(ge=1, le=60_000)] = 1000
    """CPU time one call may use."""
    timeout_ms: Annotated[int, msgspec.Meta(ge=1, le=60_000)] = 2000
    """Wall-clock deadline of one call; an overrunning worker is killed and replaced."""
    workers: Annotated[int, msgspec.Meta(ge=1, le=64)] = 1
    """Pre-forked worker processes for this app version."""


FieldName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,39}(?!\n)$")]
CollectionName = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,39}(?!\n)$")]
MAX_COLLECTIONS, MAX_INDEXES, MAX_INDEX_FIELDS = 32, 8, 4


class Collection(_ManifestStruct, frozen=True):
    """A `ctx.db` collection: its indexes, each a top-level field or a list of fields (a compound index)."""

    indexes: Annotated[list[FieldName | list[FieldName]], msgspec.Meta(max_length=MAX_INDEXES)] = []

    def __post_init__(self) -> None:
        seen = set()
        for index in self.indexes:
            fields = (index,) if isinstance(index, str) else tuple(index)
            if not 1 <= len(fields) <= MAX_INDEX_FIELDS or len(set(fields)) != len(fields):
                raise ValueError(f"an index has 1-{MAX_INDEX_FIELDS} distinct fields, not {list(fields)}")
            if fields in seen:
                raise ValueError(f"index {list(fields)} is declared twice")
            seen.add(fields)

    @property
    def index_fields(self) -> dict[str, tuple[str, ...]]:
        """Index name (its fields joined by `+`) -> its fields, in declaration order."""
        found = ((i,) if isinstance(i, str) else tuple(i) for i in self.indexes)
        return {"+".join(fields): fields for fields in found}


PRELOAD_VALUES = ("$user_id", "$today")
"""What a `[scan_preload]` find may put in its `where`, filled in at each scan: the resident's id in this app, and
the scan's day in county time (`2026-03-02`)."""
MAX_PRELOADS = 2
PreloadName = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,39}(?!\n)$")]


class ScanPreload(_ManifestStruct, frozen=True):
    """A `ctx.db.find` the platform runs for the app before it delivers a scan event of the scene kind
    (`[scan_preload.<kind>]`, `<name> = { collection = ..., where = ... }`): the page reaches the handler in
    `event.data.preloaded[<name>]`, with no round trip out of the sandbox. `where` is a find's, whose values may
    be `"$user_id"` and `"$today"` (PRELOAD_VALUES); a find on `$user_id` is not run for a scan naming nobody."""

    collection: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,39}(?!\n)$")]
    where: Annotated[dict[FieldName, Any], msgspec.Meta(max_length=8)] = {}
    order_by: Annotated[str, msgspec.Meta(pattern=r"^-?[A-Za-z_][A-Za-z0-9_]{0,39}(?!\n)$")] | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=100)] = 50

    def where_at(self, user_id: str | None, today: str) -> dict[str, Any] | None:
        """`where` with its placeholders filled in; None when it needs a `user_id` and there is none."""
        if user_id is None and "$user_id" in _placeholders(self.where):
            return None
        return _fill(self.where, {"$user_id": user_id, "$today": today})


def _fill(value: Any, values: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        return {k: _fill(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    if isinstance(value, str) and value.startswith("$"):
        return values[value]
    return value


def _placeholders(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set().union(*(_placeholders(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_placeholders(v) for v in value))
    return {value} if isinstance(value, str) and value.startswith("$") else set()


class Manifest(_ManifestStruct, frozen=True):
    """A validated miniapp.toml."""

    id: AppId
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    version: SemVer
    entry: Entry = "app:app"
    capabilities: frozenset[Capability] = frozenset()
    limits: Limits = Limits()
    scopes: dict[Scope, Purpose] = {}
    """Resident data scopes needing consent -> the purpose shown to the resident when asking (PIPL)."""
    scenes: frozenset[Scene] = frozenset()
    """Scan scene kinds whose scans this app receives (`@app.on_scan(kind)`)."""
    jobs: dict[JobName, str] = {}
    """Job name -> five-field cron schedule in county time (`yima_sdk.cron`); runs `@app.job(name)`."""
    collections: Annotated[dict[CollectionName, Collection], msgspec.Meta(max_length=MAX_COLLECTIONS)] = {}
    """`ctx.db` collections (capability `db`) -> their indexes; a query must fit a declared index."""
    staff: StaffTable = StaffTable()
    """Staff roles, unit kinds and staff-only routes (`yima_sdk._staff`); `ctx.user.staff()` in handlers."""
    share_passes_with: dict[AppId, Purpose] = {}
    """Apps that may honour this app's passes -> why (the resident consents to each share in the catalog)."""
    scan_preload: dict[str, dict[PreloadName, ScanPreload]] = {}
    """Scene kind (one of `scenes`) -> finds the platform runs before delivering its scan events (ScanPreload)."""

    @property
    def key(self) -> str:
        """The app-version key the sandbox host uses for pools: `id@version`."""
        return f"{self.id}@{self.version}"


_PATH_RE = re.compile(r"at `\$\.?([^`]*)`")


def parse_manifest(text: str, *, source: str = MANIFEST_FILE) -> Manifest:
    """Validate manifest TOML text; raise ManifestError naming the bad field."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{source}: not valid TOML: {exc}") from None
    check_scopes(raw.get("scopes"), source)
    _check_collections(raw.get("collections"), source)
    _check_jobs(raw.get("jobs"), source)
    try:
        manifest = msgspec.convert(raw, Manifest)
    except msgspec.ValidationError as exc:
        raise ManifestError(_explain(str(exc), source)) from None
    _check_staff_and_shares(manifest, source)
    _check_scan_preload(manifest, source)
    return manifest


def _check_scan_preload(manifest: Manifest, source: str) -> None:
    """A preload is a find the app could make itself at that scene: a subscribed kind, the db capability, a
    declared collection and index, known placeholders."""
    for kind, preloads in manifest.scan_preload.items():
        if len(preloads) > MAX_PRELOADS:  # each is a statement before every scan's answer
            raise ManifestError(
                f"{source}: field `scan_preload.{kind}`: at most {MAX_PRELOADS} finds per kind"
            )
        for name, preload in preloads.items():
            field = f"scan_preload.{kind}.{name}"
            if kind not in manifest.scenes:
                raise ManifestError(f"{source}: field `{field}`: `{kind}` is not one of the app's `scenes`")
            if "db" not in manifest.capabilities:
                raise ManifestError(f"{source}: field `{field}`: a preload is a db find: declare `db`")
            unknown = _placeholders(preload.where) - set(PRELOAD_VALUES)
            if unknown:
                raise ManifestError(
                    f"{source}: field `{field}.where`: unknown value {sorted(unknown)[0]!r}; a preload's "
                    f"where may use {' and '.join(PRELOAD_VALUES)}"
                )
            try:
                indexes = query.indexes_of(manifest.collections, preload.collection)
                query.plan(preload.collection, indexes, preload.where_at("u", "2026-01-01") or {},
                           preload.order_by)  # fmt: skip
            except (NotIndexed, InvalidArgument) as exc:
                raise ManifestError(f"{source}: field `{field}`: {exc.message}") from None


def _check_staff_and_shares(manifest: Manifest, source: str) -> None:
    """What the field types cannot say: a staff route names a declared role; an app shares with others."""
    problems = manifest.staff.problems()
    if problems:
        field, _, detail = problems[0].partition(": ")
        raise ManifestError(f"{source}: field `{field}`: {detail}")
    if manifest.id in manifest.share_passes_with:
        raise ManifestError(f"{source}: field `share_passes_with`: an app honours its own passes already")


def _check_jobs(jobs: object, source: str) -> None:
    """Name the offending job, and say what is wrong with its schedule (msgspec only sees a string)."""
    if not isinstance(jobs, dict):
        return
    if len(jobs) > MAX_SCHEDULES:
        raise ManifestError(f"{source}: field `jobs`: at most {MAX_SCHEDULES} schedules")
    for name, schedule in jobs.items():
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", name):
            raise ManifestError(
                f"{source}: field `jobs.{name}`: a job name is 1-40 lower-case letters, digits or `_`"
            )
        if not isinstance(schedule, str):
            raise ManifestError(f'{source}: field `jobs.{name}`: a cron schedule such as "0 18 * * *"')
        try:
            parse_cron(schedule)
        except CronError as exc:
            raise ManifestError(f"{source}: field `jobs.{name}`: {exc}") from None


_COLLECTION_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")


def _check_collections(collections: object, source: str) -> None:
    """Name the offending collection: msgspec reports a table of a dict as `collections[...]`."""
    if not isinstance(collections, dict):
        return  # msgspec reports the wrong type with the field's name
    for name, table in collections.items():
        field = f"collections.{name}"
        if not _COLLECTION_NAME.fullmatch(name):
            raise ManifestError(
                f"{source}: field `{field}`: a collection name is 1-40 lower-case letters, digits and `_`, "
                "starting with a letter"
            )
        try:
            msgspec.convert(table, Collection)
        except msgspec.ValidationError as exc:
            found = _PATH_RE.search(str(exc))
            inner = found.group(1) if found else ""
            detail = str(exc).split(" - at ")[0]
            if "regex" in detail:
                detail = "an indexed field is a top-level key: 1-40 letters, digits and `_`, not starting with a digit"
            raise ManifestError(
                f"{source}: field `{field}{'.' + inner if inner else ''}`: {detail}"
            ) from None


def load_manifest(folder: str | Path) -> Manifest:
    """Read and validate `<folder>/miniapp.toml`."""
    path = Path(folder) / MANIFEST_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_manifest(text, source=str(path))


def _explain(message: str, source: str) -> str:
    """Turn msgspec's `Expected ... - at `$.limits.workers`` into `field `limits.workers`: ...`."""
    found = _PATH_RE.search(message)
    field = found.group(1) if found else ""
    detail = message.split(" - at ")[0]
    if field in _HINTS and "regex" in detail:
        detail = f"must be {_HINTS[field]}"
    if field.startswith("scenes") and detail.startswith("Invalid enum value"):
        detail = f"{detail}; known scene kinds: {', '.join(sorted(SCENES))}"
    elif detail.startswith("Invalid enum value") or "Capability" in detail:
        detail = f"{detail}; known capabilities: {', '.join(sorted(CAPABILITIES))}"
    if not field:
        return f"{source}: {detail}"
    return f"{source}: field `{field}`: {detail}"
