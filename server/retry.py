"""The one retry helper: an operation tried again after each pause of a named policy while it fails transiently.

Each outbound call that retries names its policy here, so how often and how patiently the server retries is read
in one place: the SMS gateway, the payment provider over HTTP, and the in-process payment simulator (retried
like the HTTP provider, without pauses: nothing travels).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    name: str
    pauses_s: tuple[float, ...]
    """The pause before each retry: an operation is tried at most len(pauses_s) + 1 times."""

    @property
    def attempts(self) -> int:
        return len(self.pauses_s) + 1

    @classmethod
    def doubling(cls, name: str, *, attempts: int, first_pause_s: float) -> RetryPolicy:
        """`attempts` tries, the pause doubling from `first_pause_s`."""
        return cls(name, tuple(first_pause_s * 2**i for i in range(attempts - 1)))


SMS_GATEWAY = RetryPolicy.doubling("sms gateway", attempts=4, first_pause_s=0.2)
PAYMENT_PROVIDER = RetryPolicy("payment provider", (0.05, 0.2, 0.8))
PAYMENT_SIMULATOR = RetryPolicy("payment simulator", (0.0, 0.0))


async def retrying(
    policy: RetryPolicy,
    operation: Callable[[], Awaitable[T]],
    *,
    transient: Callable[[Exception], bool],
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> T:
    """`operation()`'s result; a failure `transient` accepts is tried again after the policy's next pause, any
    other failure and the last attempt's are raised as they are."""
    for pause in policy.pauses_s:
        try:
            return await operation()
        except Exception as exc:
            if not transient(exc):
                raise
        if pause > 0:
            await sleep(pause)
    return await operation()
