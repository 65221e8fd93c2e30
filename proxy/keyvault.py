"""The one module that talks to Azure Key Vault (azure-keyvault-keys through azure-identity)."""

import logging
import threading
from typing import Any
from urllib.parse import urlsplit

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
)
from azure.keyvault.keys.crypto import CryptographyClient, KeyWrapAlgorithm

logger = logging.getLogger(__name__)


class KeyVaultUnavailable(Exception):
    """Key Vault could not be reached, refused our identity, or throttled us."""


class KeyVaultRejected(Exception):
    """Key Vault refused the operation's input (e.g. a wrapped key that fails to decrypt)."""


def _versioned(key_id: str) -> str:
    parts = urlsplit(key_id)
    segments = [s for s in parts.path.split("/") if s]
    if parts.scheme != "https" or len(segments) != 3 or segments[0] != "keys":
        raise ValueError(
            "AZURE_KEYVAULT_KEY_ID must be a versioned key id: "
            "https://<vault>.vault.azure.net/keys/<name>/<version>."
        )
    return key_id.rstrip("/")


class KeyVaultKek:
    """A KEK in Key Vault: RSA-OAEP-256 wrap under the configured version, unwrap under any."""

    def __init__(self, key_id: str, *, credential: Any = None, **client_kwargs: Any) -> None:
        self.key_id = _versioned(key_id)
        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        self._credential = credential
        self._client_kwargs = {"retry_total": 2, "connection_timeout": 5, "read_timeout": 10}
        self._client_kwargs.update(client_kwargs)
        self._clients: dict[str, CryptographyClient] = {}
        self._lock = threading.Lock()

    def _client(self, key_id: str) -> CryptographyClient:
        with self._lock:
            client = self._clients.get(key_id)
            if client is None:
                client = CryptographyClient(key_id, self._credential, **self._client_kwargs)
                self._clients[key_id] = client
            return client

    def wrap(self, dek: bytes) -> tuple[bytes, str]:
        """Wrap a data key; returns the wrapped bytes and the versioned key id that wrapped it."""
        try:
            result = self._client(self.key_id).wrap_key(KeyWrapAlgorithm.rsa_oaep_256, dek)
        except AzureError as exc:
            raise _translate(exc, "wrap") from exc
        return result.encrypted_key, result.key_id or self.key_id

    def unwrap(self, wrapped: bytes, key_id: str) -> bytes:
        """Unwrap a data key with the (possibly older) key version that wrapped it."""
        client = self._client(_versioned(key_id))
        try:
            return client.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, wrapped).key
        except AzureError as exc:
            raise _translate(exc, "unwrap") from exc


def _translate(exc: AzureError, operation: str) -> Exception:
    status = getattr(exc, "status_code", None)
    # Only the exception class and status are logged; SDK messages could echo request data.
    logger.warning("Key Vault %s failed: %s status=%s", operation, type(exc).__name__, status)
    if (
        isinstance(exc, HttpResponseError)
        and not isinstance(exc, ClientAuthenticationError)
        and status == 400
    ):
        return KeyVaultRejected(f"Key Vault refused to {operation} this data key.")
    return KeyVaultUnavailable(f"Key Vault is unavailable ({operation}, status {status}).")
