"""ctx.db reads each live version's declared collections once, and forgets the versions that are no longer live."""

from __future__ import annotations

from server.platform.db.service import AppDb
from server.platform.runtime.service import LiveApp, LiveVersion, Runtime

MANIFEST = {"collections": {"visits": {"indexes": ["day"]}}}


class _View:
    """The runtime's view of live apps, with the real rule for which versions are live."""

    live_version = Runtime.live_version

    def __init__(self) -> None:
        self.apps: dict[str, LiveApp] = {}

    def release(self, app_id: str, version: str) -> None:
        live = LiveVersion(app_id, version, MANIFEST)
        self.apps[app_id] = LiveApp(app_id, "t", False, live, None, 0, frozenset(), 0, 0)


def test_a_process_keeps_the_declarations_of_live_versions_only():
    view = _View()
    db = AppDb(None, view)  # type: ignore[arg-type]  # declarations need no database
    for n in range(50):  # fifty releases of one app over a process's life
        view.release("gov.example.clinic", f"1.0.{n}")
        assert set(db._collections("gov.example.clinic", f"1.0.{n}")) == {"visits"}
    assert list(db._parsed) == [("gov.example.clinic", "1.0.49")]
    # a version that is not live is answered (as nothing declared) and not kept
    db._collections("gov.example.clinic", "0.9.0")
    assert list(db._parsed) == [("gov.example.clinic", "1.0.49")]
