"""Settings: frozen Structs built from YIMA_* variables by load_settings(); nothing is read at import."""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec


class Mode(enum.StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"
    TEST = "test"


class SettingsError(ValueError):
    """A YIMA_* value is missing or malformed; the message names the variable."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the server needs, passed down explicitly from start-up."""

    mode: Mode = Mode.PRODUCTION
    """development enables the SMS outbox and demo data; production refuses unsafe defaults."""
    database_url: str = ""
    """PostgreSQL DSN. Empty under `yima dev`, which starts the embedded server and fills it in."""
    redis_url: str = ""
    """Redis URL. Empty means the in-process cache, allowed only with a single worker."""
    redis_namespace: str = "yima:"
    """Prefix of every Redis key and channel, so one Redis can serve several deployments."""
    data_dir: Path = Path("data")
    """Local folder for the embedded database, the dev master key file and other local state."""
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    public_url: str = ""
    """Base URL clients use to reach us (token audience). Defaults to http://host:port."""
    master_key: str = ""
    """Base64url 32-byte key protecting secrets at rest. Empty: read from master_key_file."""
    master_key_file: Path | None = None
    jwt_issuer: str = "yima"
    access_token_ttl_s: int = 600
    refresh_token_ttl_s: int = 30 * 24 * 3600
    otp_ttl_s: int = 300
    otp_max_attempts: int = 5
    otp_per_phone_per_hour: int = 5
    otp_per_address_per_hour: int = 30
    sms_gateway_url: str = ""
    """HTTP SMS gateway. Empty: the console sender (development only)."""
    sms_gateway_secret: str = ""
    issuer_code: int = 341822
    """Our administrative division code (Guangde) as written into every credential we issue."""
    clock_skew_s: float = 30.0
    """Tolerance between a terminal's or phone's clock and ours when checking credential times."""
    ankang_validity_s: int = 120
    """How long one dynamic Ankang code stays valid."""
    ankang_refresh_s: int = 60
    """How often a phone should fetch a new code (the period codes are stamped with)."""
    platform_max_request_bytes: int = 256 * 1024
    """Largest request body the gateway forwards to a mini-app."""
    platform_max_response_bytes: int = 1024 * 1024
    """Largest answer a mini-app may return through the gateway."""
    platform_scan_deadline_ms: int = 300
    """How long a scan answer waits for the bound mini-app's display lines."""
    scan_outbox_poll_s: float = 1.0
    """How often each process looks for uploaded scans' events still to deliver to apps (scans/outbox.py)."""
    scan_outbox_lease_s: float = 300.0
    """How long a process holds a terminal whose events it delivers (renewed while it works); a process that died
    leaves the terminal due after it."""
    scan_outbox_retention_days: float = 14.0
    """How long delivered and failed uploaded scans' events are kept (`yima scan-outbox list`, `replay`) before
    every node's deliverer deletes them (`yima scan-outbox purge` does it at once)."""
    scan_outbox_hold_s: float = 0.0
    """Test hook, 0 in service: uploaded scans' events are not delivered live and wait this long for the
    deliverers (a test stops the server between an upload's commit and the app's handler)."""
    platform_queue_wait_ms: int = 15_000
    """How long a mini-app call may wait for a free sandbox worker (a burst queues); past it, 503 miniapp.busy
    with a Retry-After."""
    payment_provider_url: str = ""
    """One-card top-up provider's HTTP API. Empty: the in-process simulator (development and tests only)."""
    payment_merchant_id: str = "yima-guangde"
    payment_merchant_key: str = ""
    """Shared secret signing our requests to the provider (HMAC-SHA256); required with the provider URL."""
    payment_provider_public_key: str = ""
    """base64url raw Ed25519 key the provider signs notifications with; required with the provider URL."""
    payment_notify_url: str = ""
    """Where the provider posts notifications. Empty: <public URL>/v1/payments/notify."""
    developer_login_ttl_s: int = 600
    """How long a `yima-sdk login` sign-in waits for the developer to confirm its user code."""
    developer_login_interval_s: int = 5
    """Minimum seconds between a CLI's polls for its developer token (faster answers 429 device.slow_down)."""
    audit_checkpoint_interval_s: int = 3600
    """How often a signed checkpoint of the audit chain's head is published (when the head moved)."""
    audit_checkpoint_file: Path | None = None
    """Where this node appends every checkpoint it publishes (JSON lines). Empty: DATA_DIR/audit-checkpoints.jsonl."""
    db_role: str = "yima_app"
    """Role the server's connections act as (SET at connect); it may not alter tables or rewrite the audit log.
    Migrations run as the connecting role. Empty: act as the connecting role (not recommended)."""
    db_pool_min: int = 2
    db_pool_max: int = 10
    db_acquire_timeout_s: float = 5.0
    db_command_timeout_s: float = 10.0
    max_body_bytes: int = 1_048_576
    log_level: str = "INFO"
    trusted_proxies: tuple[str, ...] = ()
    """Peers whose X-Forwarded-For we believe when rate-limiting by client address. Empty: nobody's, loopback
    included (uvicorn would otherwise believe 127.0.0.1, and a local attacker could pick any address)."""
    metrics_port: int = 0
    """Port of the operations listener, the only one answering GET /metrics; 0: no metrics. Never the public port."""
    metrics_host: str = "127.0.0.1"
    """Address of the operations listener: loopback unless the scraper is elsewhere on a private network."""
    dev_apps: tuple[Path, ...] = ()
    """Local mini-app folders `yima dev --app` runs as released apps, reloaded on change (development only;
    the variable separates folders with the path separator, `:`)."""
    dev_first_party: bool = True
    """`yima dev` also runs each folder of the checkout's `miniapps/` (the first-party apps) as a local app, with
    its demo data (YIMA_DEV_FIRST_PARTY=0: not; the test suite sets it so)."""

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def resolved_master_key_file(self) -> Path:
        return self.master_key_file or self.data_dir / "master.key"

    @property
    def resolved_audit_checkpoint_file(self) -> Path:
        return self.audit_checkpoint_file or self.data_dir / "audit-checkpoints.jsonl"


_PREFIX = "YIMA_"
_FIELDS = {f.name: f for f in msgspec.structs.fields(Settings)}
_NOT_OURS = ("YIMA_TEST_",)
"""Variables under YIMA_ that belong to the test suite (YIMA_TEST_ADMIN_DSN, YIMA_TEST_REDIS_URL), not to the
server: set for `make test`, they reach every CLI the tests start and must not be refused as unknown settings.
No setting may be named test_*, so nothing of ours hides here (a test pins it)."""


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build Settings from YIMA_* variables, then explicit overrides (command-line flags win)."""
    environ = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    for name in _FIELDS:
        var = _PREFIX + name.upper()
        if var in environ:
            value: Any = environ[var]
            if name == "trusted_proxies":
                value = [p.strip() for p in value.split(",") if p.strip()]
            elif name == "dev_apps":
                value = [Path(p) for p in value.split(os.pathsep) if p]
            raw[name] = value
    unknown = sorted(
        k
        for k in environ
        if k.startswith(_PREFIX) and not k.startswith(_NOT_OURS) and k[len(_PREFIX) :].lower() not in _FIELDS
    )
    if unknown and environ.get("YIMA_ALLOW_UNKNOWN") != "1":
        known = ", ".join(_PREFIX + n.upper() for n in sorted(_FIELDS))
        raise SettingsError(f"unknown setting {unknown[0]} (known: {known})")
    raw.update({k: v for k, v in overrides.items() if v is not None})
    for name in (
        "data_dir",
        "master_key_file",
        "audit_checkpoint_file",
    ):  # msgspec.convert takes Path objects, not strings
        if isinstance(raw.get(name), str):
            raw[name] = Path(raw[name])
    if "dev_apps" in raw:
        raw["dev_apps"] = [Path(p) for p in raw["dev_apps"]]
    try:
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(_name_variable(str(exc))) from None
    _check(settings)
    return settings


def _name_variable(message: str) -> str:
    # msgspec says "... - at `$.port`"; users know the variable, not the field path.
    if "`$." in message:
        field = message.split("`$.", 1)[1].split("`", 1)[0].split("[", 1)[0]
        return f"{_PREFIX}{field.upper()}: {message.split(' - at ', 1)[0]}"
    return message


def _check(s: Settings) -> None:
    if not 0 < s.port < 65536:
        raise SettingsError(f"YIMA_PORT: must be 1-65535, got {s.port}")
    if s.metrics_port and (not 0 < s.metrics_port < 65536 or s.metrics_port == s.port):
        raise SettingsError(f"YIMA_METRICS_PORT: a port other than YIMA_PORT, got {s.metrics_port}")
    if s.workers < 1:
        raise SettingsError(f"YIMA_WORKERS: must be at least 1, got {s.workers}")
    if s.workers > 1 and not s.redis_url:
        raise SettingsError(
            "YIMA_WORKERS: more than one worker needs YIMA_REDIS_URL, because rate limits, the replay guard "
            "and pub/sub must be shared across workers; set YIMA_REDIS_URL or run one worker"
        )
    if s.db_pool_min < 1 or s.db_pool_max < s.db_pool_min:
        raise SettingsError("YIMA_DB_POOL_MAX: must be >= YIMA_DB_POOL_MIN >= 1")
    if s.database_url and not s.database_url.startswith(("postgresql://", "postgres://")):
        raise SettingsError("YIMA_DATABASE_URL: must be a postgresql:// URL")
    if s.redis_url and not s.redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError("YIMA_REDIS_URL: must be a redis:// or rediss:// URL")
    if s.sms_gateway_url and not s.sms_gateway_secret:
        raise SettingsError(
            "YIMA_SMS_GATEWAY_SECRET: required with YIMA_SMS_GATEWAY_URL (requests are signed)"
        )
    if s.payment_provider_url and not (s.payment_merchant_key and s.payment_provider_public_key):
        raise SettingsError(
            "YIMA_PAYMENT_MERCHANT_KEY: required (with YIMA_PAYMENT_PROVIDER_PUBLIC_KEY) when YIMA_PAYMENT_PROVIDER_URL is set"
        )
    if not 100000 <= s.issuer_code <= 999999:
        raise SettingsError("YIMA_ISSUER_CODE: a 6-digit administrative division code, e.g. 341822")
    if not 0 <= s.clock_skew_s <= 600:
        raise SettingsError("YIMA_CLOCK_SKEW_S: 0-600 seconds")
    if not 10 <= s.ankang_refresh_s < s.ankang_validity_s <= 600:
        raise SettingsError(
            "YIMA_ANKANG_VALIDITY_S: must exceed YIMA_ANKANG_REFRESH_S (>= 10) and be at most 600"
        )
    if s.access_token_ttl_s < 30 or s.access_token_ttl_s > 3600:
        raise SettingsError("YIMA_ACCESS_TOKEN_TTL_S: keep access tokens short-lived (30-3600 s)")
    if not 1 <= s.developer_login_interval_s <= 60:
        raise SettingsError("YIMA_DEVELOPER_LOGIN_INTERVAL_S: 1-60 seconds")
    if not 60 <= s.developer_login_ttl_s <= 1800:
        raise SettingsError("YIMA_DEVELOPER_LOGIN_TTL_S: 60-1800 seconds")
    if s.dev_apps and s.mode is not Mode.DEVELOPMENT:
        raise SettingsError("YIMA_DEV_APPS: local app folders run only under `yima dev` (development mode)")
    if s.otp_ttl_s > 300:
        raise SettingsError("YIMA_OTP_TTL_S: an OTP may be valid at most 300 s")
    if s.scan_outbox_hold_s and s.mode is Mode.PRODUCTION:
        raise SettingsError("YIMA_SCAN_OUTBOX_HOLD_S: a test hook (holds scan events back), 0 in production")
    if not 0 < s.scan_outbox_retention_days <= 3650:
        raise SettingsError("YIMA_SCAN_OUTBOX_RETENTION_DAYS: more than 0, at most 3650 days")
    if not (
        0 < s.scan_outbox_poll_s <= 60 and 10 <= s.scan_outbox_lease_s <= 3600 and s.scan_outbox_hold_s >= 0
    ):
        raise SettingsError(
            "YIMA_SCAN_OUTBOX_POLL_S: 0-60 s; YIMA_SCAN_OUTBOX_LEASE_S: 10-3600 s; YIMA_SCAN_OUTBOX_HOLD_S: >= 0"
        )


def check_can_serve(s: Settings) -> None:
    """What serving residents needs beyond what every command needs (migrate and admin do not send SMS)."""
    if s.mode is Mode.PRODUCTION and not s.sms_gateway_url:
        raise SettingsError(
            "YIMA_SMS_GATEWAY_URL: production needs a real SMS gateway (the console sender is dev-only)"
        )
