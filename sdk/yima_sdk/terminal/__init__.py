"""The terminal SDK: verify Ankang and ride codes offline, record every scan durably, upload later.

Exception tree::

    TerminalError(code)       "terminal.no_trust_list", "terminal.no_fares" (`fare` before its app's fare table),
                              "terminal.bad_lists" (a malformed list answer)
    TransportError            network or server failure, or the token endpoint refused the terminal; the
                              terminal keeps working offline
    (from yima_sdk.codes)     CredentialError(code) never escapes a scan: it becomes a reject decision
    (from yima_sdk.trust)     TrustListError(code), RevocationError(code) from refresh/load; `time.*` codes
                              from sync_clock for a time answer that is not the server's
    (from yima_sdk.documents) DocumentError from load_documents/sync_documents (bad signature, unpinned
                              root, another app's, a held version replaced)
    (from yima_sdk.fares)     FareError from load_documents (a `fares` version that is no fare table) and
                              fare (unknown line or stop)
"""

from yima_sdk.terminal._auth import TerminalCredentials
from yima_sdk.terminal._clock import sign_server_time, verify_server_time
from yima_sdk.terminal._lists import Admission, HeldEntry
from yima_sdk.terminal._terminal import PendingScans, ScanDecision, Terminal, TerminalError
from yima_sdk.terminal._transport import HttpTransport, Transport, TransportError
from yima_sdk.terminal._wire import ScanBatch, ScanBatchResult, ScanRecord, ScanRecordResult

__all__ = [
    "Admission",
    "HeldEntry",
    "HttpTransport",
    "PendingScans",
    "ScanBatch",
    "ScanBatchResult",
    "ScanDecision",
    "ScanRecord",
    "ScanRecordResult",
    "Terminal",
    "TerminalCredentials",
    "TerminalError",
    "Transport",
    "TransportError",
    "sign_server_time",
    "verify_server_time",
]
