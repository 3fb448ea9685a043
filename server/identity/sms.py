"""Sending SMS: one interface, a console sender for development and an HTTP gateway adapter.

Every sender honours one contract (tests/identity/test_sms_contract.py): `send` returns a message id, the same
idempotency key never sends twice and returns the same id, transient gateway failures are retried, and a message
that cannot be delivered raises SmsError.
"""

from __future__ import annotations

import abc
import collections
import hashlib
import hmac
import time
from dataclasses import dataclass, field

import httpx
import msgspec

from server.retry import SMS_GATEWAY, RetryPolicy, retrying


class SmsError(RuntimeError):
    """The gateway refused or kept failing; the message was not sent."""


@dataclass(frozen=True)
class SmsMessage:
    phone: str
    template: str
    params: dict[str, str]
    message_id: str
    sent_at: float = field(default_factory=time.time)


class SmsSender(abc.ABC):
    @abc.abstractmethod
    async def send(self, phone: str, template: str, params: dict[str, str], *, idempotency_key: str) -> str:
        """Send one templated message; returns the gateway's message id."""

    async def close(self) -> None:  # noqa: B027 - optional hook; most senders hold nothing
        """Release connections."""


class ConsoleSender(SmsSender):
    """Development only: keeps the last messages in memory for GET /v1/dev/sms-outbox and logs that it sent."""

    def __init__(self, capacity: int = 500) -> None:
        self.outbox: collections.deque[SmsMessage] = collections.deque(maxlen=capacity)
        self._by_key: dict[str, str] = {}

    async def send(self, phone: str, template: str, params: dict[str, str], *, idempotency_key: str) -> str:
        if idempotency_key in self._by_key:
            return self._by_key[idempotency_key]
        message_id = "console-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:16]
        self.outbox.append(SmsMessage(phone, template, dict(params), message_id))
        self._by_key[idempotency_key] = message_id
        if len(self._by_key) > 10 * (self.outbox.maxlen or 500):
            self._by_key.clear()
        return message_id

    def messages_for(self, phone: str) -> list[SmsMessage]:
        return [m for m in self.outbox if m.phone == phone]


class _SendBody(msgspec.Struct):
    to: str
    template: str
    params: dict[str, str]


class _SendReply(msgspec.Struct):
    message_id: str


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over "timestamp.body": the gateway checks it and the freshness of the timestamp."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class _GatewayFailing(Exception):
    """A failure worth another try: the gateway unreachable, busy (429) or failing (5xx)."""


class HttpGatewaySender(SmsSender):
    """A typical SMS gateway: signed JSON POST, idempotency key header, retries with backoff on 5xx and timeouts."""

    def __init__(
        self,
        base_url: str,
        secret: str,
        *,
        retry: RetryPolicy = SMS_GATEWAY,
        timeout_s: float = 3.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._client = httpx.AsyncClient(base_url=base_url, timeout=timeout_s, transport=transport)
        self._secret = secret
        self._retry = retry

    async def send(self, phone: str, template: str, params: dict[str, str], *, idempotency_key: str) -> str:
        body = msgspec.json.encode(_SendBody(phone, template, params))

        async def attempt() -> str:
            timestamp = str(int(time.time()))
            headers = {
                "content-type": "application/json",
                "x-timestamp": timestamp,
                "x-signature": sign(self._secret, timestamp, body),
                "idempotency-key": idempotency_key,
            }
            try:
                response = await self._client.post("/v1/messages", content=body, headers=headers)
            except httpx.TransportError as exc:
                raise _GatewayFailing(f"transport: {type(exc).__name__}") from exc
            if response.status_code in (200, 201):
                return msgspec.json.decode(response.content, type=_SendReply).message_id
            if response.status_code == 429 or response.status_code >= 500:
                raise _GatewayFailing(f"HTTP {response.status_code}")
            raise SmsError(f"gateway refused the message: HTTP {response.status_code}")

        try:
            return await retrying(
                self._retry, attempt, transient=lambda exc: isinstance(exc, _GatewayFailing)
            )
        except _GatewayFailing as exc:
            raise SmsError(f"gateway kept failing after {self._retry.attempts} attempts ({exc})") from None

    async def close(self) -> None:
        await self._client.aclose()
