"""yima_sdk's public names are curated and pinned; importing it stays light; every error is documented."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yima_sdk
from yima_sdk import capabilities, errors

DOC = Path(__file__).resolve().parents[2] / "docs" / "sdk.md"

PUBLIC = [
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


def test_public_names_are_pinned() -> None:
    assert yima_sdk.__all__ == PUBLIC
    for name in PUBLIC:
        assert getattr(yima_sdk, name) is not None


def test_every_error_class_is_exported() -> None:
    classes = {n for n in errors.__all__ if inspect.isclass(getattr(errors, n))}
    assert classes <= set(PUBLIC)


def test_import_is_light() -> None:
    """Every sandbox worker imports yima_sdk at start-up: no crypto, databases, HTTP or simulator."""
    heavy = [
        "cryptography",
        "sqlite3",
        "http.client",
        "urllib.request",
        "zipfile",
        "yima_sdk.simulator",
        "yima_sdk.codes",
        "yima_sdk.trust",
        "yima_sdk.terminal",
        "yima_sdk.pack",
    ]
    script = f"import sys, yima_sdk; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_credential_modules_stay_reachable() -> None:
    import yima_sdk.codes
    import yima_sdk.holder
    import yima_sdk.terminal
    import yima_sdk.trust

    assert yima_sdk.codes and yima_sdk.holder and yima_sdk.terminal and yima_sdk.trust


@pytest.mark.parametrize(
    "module",
    [
        "yima_sdk.capabilities",
        "yima_sdk.codes",
        "yima_sdk.contract",
        "yima_sdk.cron",
        "yima_sdk.fares",
        "yima_sdk.holder",
        "yima_sdk.passes",
        "yima_sdk.simulator",
        "yima_sdk.terminal",
        "yima_sdk.trust",
    ],
)
def test_every_name_a_public_module_lists_is_importable(module: str) -> None:
    # its names may live in private modules beside it; `from module import *` must still give each of them
    script = f"from {module} import *"
    done = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_errors_and_capability_operations_are_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    for name in errors.__all__:
        cls = getattr(errors, name)
        if inspect.isclass(cls) and issubclass(cls, errors.YimaError):
            assert f"`{cls.code}`" in text, f"{name} ({cls.code}) is not in docs/sdk.md"
    section = text.split("## Capability operations", 1)[1].split("\n## ", 1)[0]
    for facade, capability in [
        (capabilities.Storage, "storage"),
        (capabilities.User, "user"),
        (capabilities.Notify, "notify"),
        (capabilities.Payments, "payments"),
        (capabilities.Credentials, "credentials"),
        (capabilities.Jobs, "jobs"),
        (capabilities.Log, "log"),
        (capabilities.Db, "db"),
    ]:
        for op in [n for n in vars(facade) if not n.startswith("_")]:
            assert re.search(rf"`{capability}\.{op}`", section), f"{capability}.{op} is not documented"
