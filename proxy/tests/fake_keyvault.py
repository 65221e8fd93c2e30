"""An in-process stand-in for Azure Key Vault, plugged into the real SDK as an azure-core transport.

It answers the challenge-auth 401, GET key (JWK with the RSA public key), POST wrapkey and
unwrapkey (real RSA-OAEP-256 with test RSA keys), so azure-keyvault-keys' own code runs.
"""

import base64
import io
import json
import time
from typing import Any
from urllib.parse import urlsplit

import requests
from azure.core.credentials import AccessToken
from azure.core.exceptions import ServiceRequestError
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest._requests_basic import RestRequestsTransportResponse
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from requests.structures import CaseInsensitiveDict

VAULT = "https://ts-test.vault.azure.net"
KEY_NAME = "tokenscope-kek"
OAEP_256 = padding.OAEP(
    mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None
)
# Generated once per test session: RSA key generation is the slow part.
_RSA_KEYS: dict[str, rsa.RSAPrivateKey] = {}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int_bytes(number: int) -> bytes:
    return number.to_bytes((number.bit_length() + 7) // 8, "big")


def key_id(version: str) -> str:
    return f"{VAULT}/keys/{KEY_NAME}/{version}"


class StaticCredential:
    """A credential that hands out a fixed bearer token (no Entra ID round trip)."""

    def __init__(self) -> None:
        self.calls = 0

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.calls += 1
        return AccessToken("fake-kv-token", int(time.time()) + 3600)


class FakeKeyVaultTransport(HttpTransport):  # type: ignore[type-arg]
    """Answers like Key Vault; `down=True` simulates an outage (connection errors)."""

    def __init__(self, versions: tuple[str, ...] = ("v1", "v2"), *, allow_get: bool = True):
        for version in versions:
            if version not in _RSA_KEYS:
                _RSA_KEYS[version] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.keys = {version: _RSA_KEYS[version] for version in versions}
        self.allow_get = allow_get
        self.down = False
        self.calls: list[tuple[str, str]] = []
        self.bodies: list[bytes] = []

    # HttpTransport's context-manager protocol
    def __enter__(self) -> "FakeKeyVaultTransport":
        return self

    def __exit__(self, *args: Any) -> None:
        return None

    def open(self) -> None:
        return None

    def close(self) -> None:
        return None

    def sleep(self, duration: float) -> None:
        return None  # retries must not slow the suite down

    def _respond(self, request: Any, status: int, body: dict | None, headers: dict | None = None):
        raw = requests.Response()
        raw.status_code = status
        raw.raw = io.BytesIO(json.dumps(body).encode() if body is not None else b"")
        raw.headers = CaseInsensitiveDict({"content-type": "application/json", **(headers or {})})
        raw.reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden"}.get(
            status, "Error"
        )
        raw.url = request.url
        response = RestRequestsTransportResponse(request=request, internal_response=raw)
        response.read()
        return response

    def send(self, request: Any, **kwargs: Any) -> Any:
        if self.down:
            raise ServiceRequestError("connection refused (fake Key Vault is down)")
        if not request.headers.get("Authorization"):
            challenge = (
                'Bearer authorization="https://login.microsoftonline.com/'
                '00000000-0000-0000-0000-000000000000", resource="https://vault.azure.net"'
            )
            return self._respond(request, 401, None, {"WWW-Authenticate": challenge})
        path = [p for p in urlsplit(request.url).path.split("/") if p]
        if len(path) < 3 or path[0] != "keys" or path[1] != KEY_NAME or path[2] not in self.keys:
            return self._respond(request, 404, {"error": {"code": "KeyNotFound", "message": "x"}})
        version = path[2]
        private = self.keys[version]
        operation = path[3] if len(path) > 3 else "get"
        self.calls.append((operation, version))
        body = request.content if isinstance(request.content, bytes) else request.content or b""
        if isinstance(body, str):
            body = body.encode()
        self.bodies.append(body)
        if operation == "get":
            if not self.allow_get:
                return self._respond(request, 403, {"error": {"code": "Forbidden", "message": "x"}})
            numbers = private.public_key().public_numbers()
            jwk = {
                "kid": key_id(version),
                "kty": "RSA-HSM",
                "key_ops": ["wrapKey", "unwrapKey"],
                "n": _b64url(_int_bytes(numbers.n)),
                "e": _b64url(_int_bytes(numbers.e)),
            }
            return self._respond(request, 200, {"key": jwk, "attributes": {"enabled": True}})
        payload = json.loads(body)
        if payload.get("alg") != "RSA-OAEP-256":
            return self._respond(request, 400, {"error": {"code": "BadParameter", "message": "x"}})
        value = _unb64url(payload["value"])
        if operation == "wrapkey":
            result = private.public_key().encrypt(value, OAEP_256)
        elif operation == "unwrapkey":
            try:
                result = private.decrypt(value, OAEP_256)
            except ValueError:
                return self._respond(
                    request, 400, {"error": {"code": "BadParameter", "message": "Bad data"}}
                )
        else:
            return self._respond(request, 404, {"error": {"code": "NotFound", "message": "x"}})
        return self._respond(request, 200, {"kid": key_id(version), "value": _b64url(result)})
