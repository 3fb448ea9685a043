"""yima_sdk: write, test and pack yima mini-apps; verify yima codes offline on terminals.

    from yima_sdk import App, Context, Request

    app = App()

    @app.get("/hello")
    async def hello(ctx: Context, request: Request) -> dict:
        return {"hello": await ctx.user.id()}

These names are the public API (pinned by sdk/tests/test_sdk_public_api.py). Every sandbox worker imports this
package at start-up, so it imports only the programming model; the rest are submodules imported on use:
`yima_sdk.contract` (the capability contract: one Struct per operation), `yima_sdk.simulator` (local host),
`yima_sdk.testing` (pytest plugin), `yima_sdk.pack`, `yima_sdk.publish`, `yima_sdk.passes` (app pass format),
`yima_sdk.fares` (the bus fare engine, shared by the bus app and terminals),
and for terminals and phones `yima_sdk.codes`, `yima_sdk.trust`, `yima_sdk.holder`, `yima_sdk.terminal`.
"""

from yima_sdk._app import App, Context
from yima_sdk._bridge import JobEvent, Request, Response, ScanData, ScanEvent, ScannedPass
from yima_sdk.capabilities import (
    AppPass,
    Credentials,
    Db,
    Document,
    DocumentVersion,
    HeldEntry,
    Jobs,
    Log,
    Notify,
    Page,
    Payment,
    Payments,
    Record,
    RecordPage,
    Refund,
    StaffRole,
    StaffRoles,
    Storage,
    Terminals,
    User,
    Verification,
)
from yima_sdk.contract import ScanReply
from yima_sdk.errors import (
    BadScanReply,
    CapabilityDenied,
    CapabilityFailed,
    ConsentDenied,
    CounterOutOfRange,
    InvalidArgument,
    InvalidRequest,
    ManifestError,
    NotIndexed,
    PackError,
    PaymentDeclined,
    PaymentFailed,
    PublishError,
    QuotaExceeded,
    RouteNotFound,
    VersionConflict,
    YimaError,
)
from yima_sdk.manifest import Limits, Manifest, load_manifest, parse_manifest

__version__ = "0.1.0"

__all__ = [
    "App",
    "AppPass",
    "BadScanReply",
    "CapabilityDenied",
    "CapabilityFailed",
    "ConsentDenied",
    "Context",
    "CounterOutOfRange",
    "Credentials",
    "Db",
    "Document",
    "DocumentVersion",
    "HeldEntry",
    "InvalidArgument",
    "InvalidRequest",
    "JobEvent",
    "Jobs",
    "Limits",
    "Log",
    "Manifest",
    "ManifestError",
    "NotIndexed",
    "Notify",
    "PackError",
    "Page",
    "Payment",
    "PaymentDeclined",
    "PaymentFailed",
    "Payments",
    "PublishError",
    "QuotaExceeded",
    "Record",
    "RecordPage",
    "Refund",
    "Request",
    "Response",
    "RouteNotFound",
    "ScanData",
    "ScanEvent",
    "ScanReply",
    "ScannedPass",
    "StaffRole",
    "StaffRoles",
    "Storage",
    "Terminals",
    "User",
    "Verification",
    "VersionConflict",
    "YimaError",
    "load_manifest",
    "parse_manifest",
]
