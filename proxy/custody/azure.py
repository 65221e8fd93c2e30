"""The Azure Key Vault KEK provider: RSA-OAEP-256 wrap/unwrap with an RSA-HSM key."""

from typing import Any

from proxy.custody.errors import KeyCustodyTampered, KeyCustodyUnavailable
from proxy.keyvault import KeyVaultKek, KeyVaultRejected, KeyVaultUnavailable

RSA_OAEP_256 = "RSA-OAEP-256"


class AzureKekProvider:
    """Wraps data keys under a versioned Key Vault key; the KEK never leaves the vault."""

    name = "azure"

    def __init__(self, key_id: str, *, credential: Any = None, **client_kwargs: Any) -> None:
        try:
            self._vault = KeyVaultKek(key_id, credential=credential, **client_kwargs)
        except ValueError as exc:
            raise KeyCustodyUnavailable(str(exc)) from exc

    @property
    def current_kek_id(self) -> str:
        return self._vault.key_id

    def wrap(self, dek: bytes) -> tuple[bytes, str, str]:
        try:
            wrapped, kek_id = self._vault.wrap(dek)
        except KeyVaultUnavailable as exc:
            raise KeyCustodyUnavailable(str(exc)) from exc
        return wrapped, kek_id, RSA_OAEP_256

    def unwrap(self, wrapped: bytes, kek_id: str, alg: str) -> bytes:
        if alg != RSA_OAEP_256 or not kek_id.startswith("https://"):
            raise KeyCustodyUnavailable("This row was wrapped by another KEK provider.")
        try:
            return self._vault.unwrap(wrapped, kek_id)
        except KeyVaultRejected as exc:
            raise KeyCustodyTampered(str(exc)) from exc
        except KeyVaultUnavailable as exc:
            raise KeyCustodyUnavailable(str(exc)) from exc
