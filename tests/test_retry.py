"""The one retry helper: how many tries a policy allows, which failures it retries, the pauses it takes."""

from __future__ import annotations

import pytest

from server.retry import PAYMENT_PROVIDER, SMS_GATEWAY, RetryPolicy, retrying


class Flaky(Exception):
    pass


def _failing(times: int, exc: Exception):
    calls: list[int] = []

    async def operation() -> str:
        calls.append(len(calls))
        if len(calls) <= times:
            raise exc
        return "done"

    return operation, calls


async def test_a_transient_failure_is_tried_again_after_each_pause_of_the_policy():
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    operation, calls = _failing(2, Flaky())
    policy = RetryPolicy("test", (0.1, 0.2, 0.4))
    assert await retrying(policy, operation, transient=lambda e: isinstance(e, Flaky), sleep=sleep) == "done"
    assert len(calls) == 3 and slept == [0.1, 0.2]


async def test_the_last_attempts_failure_is_raised_as_it_is():
    operation, calls = _failing(10, Flaky("still"))

    async def sleep(s: float) -> None:
        return None

    with pytest.raises(Flaky, match="still"):
        await retrying(PAYMENT_PROVIDER, operation, transient=lambda e: True, sleep=sleep)
    assert len(calls) == PAYMENT_PROVIDER.attempts == 4


async def test_a_failure_that_is_not_transient_is_not_tried_again():
    operation, calls = _failing(1, ValueError("refused"))
    with pytest.raises(ValueError, match="refused"):
        await retrying(SMS_GATEWAY, operation, transient=lambda e: isinstance(e, Flaky))
    assert len(calls) == 1


def test_a_doubling_policy_doubles_its_pauses():
    assert SMS_GATEWAY.pauses_s == (0.2, 0.4, 0.8) and SMS_GATEWAY.attempts == 4
