"""Helpers shared by the credentials and terminals tests: verified residents, terminals and their tokens."""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.conftest import AppClient, Session, login, valid_id_number

TOKEN_URL = "http://127.0.0.1:8000/v1/terminal/token"


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


IDENTITY_POINT = bytes([1]) + bytes(31)
"""The encoding of the identity point: 32 bytes that decode as an Ed25519 public key of small order, under which
OpenSSL accepts R = identity, S = 0 as a signature of any message. Every key registration must refuse it."""


def random_id_number() -> str:
    year = 1950 + secrets.randbelow(50)
    month = 1 + secrets.randbelow(12)
    day = 1 + secrets.randbelow(28)
    return valid_id_number(birth=f"{year}{month:02d}{day:02d}", seq=f"{secrets.randbelow(1000):03d}")


async def verified_resident(client: AppClient, name: str = "李小红") -> tuple[Session, str]:
    session = await login(client)
    id_number = random_id_number()
    r = await client.put(
        "/v1/me/identity", json={"name": name, "id_number": id_number}, headers=session.headers
    )
    if r.status_code == 409:  # the random ID number was taken: try another
        return await verified_resident(client, name)
    assert r.status_code == 200, r.text
    return session, id_number


def public_key_b64(key: Ed25519PrivateKey) -> str:
    return b64(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


async def register_terminal(
    client: AppClient,
    operator: Session,
    kind: str = "clinic",
    scene: str | None = None,
    unit: str | None = None,
) -> tuple[str, Ed25519PrivateKey]:
    key = Ed25519PrivateKey.generate()
    r = await client.post(
        "/v1/admin/terminals",
        json={
            "name": f"{kind} gate",
            "kind": kind,
            "scene": scene or f"scene-{secrets.token_hex(3)}",
            "public_key": public_key_b64(key),
            **({"unit": unit} if unit else {}),
        },
        headers=operator.headers,
    )
    assert r.status_code == 201, r.text
    return r.json()["id"], key


def client_assertion(
    terminal_id: str,
    key: Ed25519PrivateKey,
    *,
    aud: str = TOKEN_URL,
    exp_in: float = 60,
    jti: str | None = None,
    **claims: Any,
) -> str:
    now = time.time()
    body = {
        "iss": terminal_id,
        "sub": terminal_id,
        "aud": aud,
        "exp": int(now + exp_in),
        "iat": int(now),
        "jti": jti or uuid.uuid4().hex,
        **claims,
    }
    return jwt.encode(body, key, algorithm="EdDSA")


def token_form(assertion: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    }


async def terminal_token(client: AppClient, terminal_id: str, key: Ed25519PrivateKey) -> dict[str, str]:
    r = await client.post("/v1/terminal/token", data=token_form(client_assertion(terminal_id, key)))
    assert r.status_code == 200, r.text
    return {"authorization": f"Bearer {r.json()['access_token']}"}


async def ankang_payload(client: AppClient, resident: Session) -> str:
    r = await client.get("/v1/me/codes/ankang", headers=resident.headers)
    assert r.status_code == 200, r.text
    return str(r.json()["payload"])


async def scan(client: AppClient, headers: dict[str, str], payload: str) -> dict[str, Any]:
    r = await client.post(
        "/v1/scans", json={"payload": payload, "scanned_at": int(time.time() * 1000)}, headers=headers
    )
    assert r.status_code == 200, r.text
    return dict(r.json())
