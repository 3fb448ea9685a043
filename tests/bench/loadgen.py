"""A small HTTP/1.1 load generator for the benchmarks: keep-alive connections spread over worker processes.

Runs in processes separate from the server under test, so the load does not share the server's interpreter.
Each connection sends a request, reads the whole response, records the latency, and repeats until the deadline.
A connection's next request may depend on the previous response (e.g. rotating refresh tokens).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

NextRequest = Callable[[int, bytes | None], bytes]
"""(connection index, previous response body or None) -> the raw request bytes to send next."""


def http_request(
    method: str, path: str, *, host: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"host: {host}", "connection: keep-alive"]
    for key, value in (headers or {}).items():
        lines.append(f"{key}: {value}")
    if body or method in ("POST", "PUT"):
        lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    status, _, body = await read_answer(reader)
    return status, body


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes, bytes]:
    """One HTTP/1.1 response: (status, head, body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        lower = line.lower()
        if lower.startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
        elif lower.startswith(b"transfer-encoding:") and b"chunked" in lower:
            chunked = True
    if chunked:
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
        return status, head, body
    return status, head, await reader.readexactly(length) if length else b""


async def _connection(
    index: int,
    host: str,
    port: int,
    next_request: NextRequest,
    deadline: float,
    out: list[tuple[float, int]],
    every_s: float = 0.0,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    previous: bytes | None = None
    if every_s:  # paced connections start spread over one interval, not all at once
        await asyncio.sleep(every_s * (index * 0.618034 % 1))
    try:
        while time.perf_counter() < deadline:
            request = next_request(index, previous)
            started = time.perf_counter()
            writer.write(request)
            status, previous = await _read_response(reader)
            out.append((time.perf_counter() - started, status))
            if every_s:  # the next request at the next slot (at once if this answer took longer)
                await asyncio.sleep(max(0.0, started + every_s - time.perf_counter()))
    finally:
        writer.close()


def _worker(
    host: str,
    port: int,
    indices: Sequence[int],
    next_request: NextRequest,
    duration_s: float,
    conn: object,
    every_s: float = 0.0,
) -> None:
    results: list[tuple[float, int]] = []

    async def main() -> None:
        deadline = time.perf_counter() + duration_s
        await asyncio.gather(
            *(_connection(i, host, port, next_request, deadline, results, every_s) for i in indices)
        )

    asyncio.run(main())
    conn.send(results)  # type: ignore[attr-defined]


@dataclass
class LoadResult:
    requests: int
    seconds: float
    statuses: dict[int, int]
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def line(self, label: str) -> str:
        return (
            f"{label:<38} {self.rate:>9.0f} req/s   p50 {self.p50_ms:6.2f} ms   p99 {self.p99_ms:6.2f} ms   "
            f"statuses {json.dumps(self.statuses)}"
        )


def run_load(
    host: str,
    port: int,
    next_request: NextRequest,
    *,
    connections: int,
    duration_s: float,
    processes: int = 2,
    every_s: float = 0.0,
) -> LoadResult:
    """Drive `connections` keep-alive connections from `processes` processes for `duration_s` seconds: each
    sends its next request as soon as it has an answer (a closed loop: the most the server does), or, with
    `every_s`, one request every `every_s` seconds (a set rate, as terminals scanning people in turn)."""
    ctx = mp.get_context("fork")
    pipes, procs = [], []
    for p in range(processes):
        indices = list(range(p, connections, processes))
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(
            target=_worker, args=(host, port, indices, next_request, duration_s, child, every_s)
        )
        proc.start()
        pipes.append(parent)
        procs.append(proc)
    samples: list[tuple[float, int]] = []
    for parent in pipes:
        samples.extend(parent.recv())
    for proc in procs:
        proc.join()
    latencies = sorted(s[0] for s in samples)
    statuses: dict[int, int] = {}
    for _, status in samples:
        statuses[status] = statuses.get(status, 0) + 1
    return LoadResult(
        requests=len(samples),
        seconds=duration_s,
        statuses=statuses,
        p50_ms=statistics.median(latencies) * 1e3 if latencies else float("nan"),
        p99_ms=latencies[int(len(latencies) * 0.99) - 1] * 1e3 if latencies else float("nan"),
    )
