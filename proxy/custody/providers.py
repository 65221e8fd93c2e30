"""KEK providers: one interface, wrap(dek) -> (wrapped, kek_id, alg) and unwrap(...) -> dek."""

import base64
import binascii
import threading
from typing import Any, Protocol

from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap,
    aes_key_wrap,
)
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from proxy.custody.errors import KeyCustodyTampered, KeyCustodyUnavailable

LOCAL_PREFIX = "local:"
A256KW = "A256KW"


class KekProvider(Protocol):
    name: str

    @property
    def current_kek_id(self) -> str: ...

    def wrap(self, dek: bytes) -> tuple[bytes, str, str]:
        """Wrap a data key under the current KEK version: (wrapped, kek_id, wrap_alg)."""
        ...

    def unwrap(self, wrapped: bytes, kek_id: str, alg: str) -> bytes:
        """Unwrap a data key wrapped under `kek_id` (any version this provider still holds)."""
        ...


class LocalKekProvider:
    """RFC 3394 AES key wrap with KEKs from the environment; for development and tests only."""

    name = "local"

    def __init__(self, keks: dict[str, bytes], *, current: str) -> None:
        for version, kek in keks.items():
            if len(kek) != 32:
                raise KeyCustodyUnavailable(f"Local KEK version {version!r} is not 32 bytes.")
        if current not in keks:
            raise KeyCustodyUnavailable("The current local KEK version is not configured.")
        self._keks = dict(keks)
        self._current = current

    @property
    def current_kek_id(self) -> str:
        return LOCAL_PREFIX + self._current

    def wrap(self, dek: bytes) -> tuple[bytes, str, str]:
        return aes_key_wrap(self._keks[self._current], dek), self.current_kek_id, A256KW

    def unwrap(self, wrapped: bytes, kek_id: str, alg: str) -> bytes:
        if alg != A256KW or not kek_id.startswith(LOCAL_PREFIX):
            raise KeyCustodyUnavailable("This row was wrapped by another KEK provider.")
        kek = self._keks.get(kek_id.removeprefix(LOCAL_PREFIX))
        if kek is None:
            raise KeyCustodyUnavailable("The KEK version of this row is not configured.")
        try:
            return aes_key_unwrap(kek, wrapped)
        except InvalidUnwrap as exc:
            raise KeyCustodyTampered("The wrapped data key failed its integrity check.") from exc


def _decode_kek(value: str, version: str) -> bytes:
    try:
        return base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyCustodyUnavailable(f"Local KEK version {version!r} is not valid base64.") from exc


def local_provider_from_settings() -> LocalKekProvider:
    if not settings.LOCAL_KEK:
        raise KeyCustodyUnavailable("TOKENSCOPE_LOCAL_KEK is not set.")
    keks = {
        version: _decode_kek(value, version)
        for version, value in settings.LOCAL_KEK_PREVIOUS.items()
    }
    keks[settings.LOCAL_KEK_VERSION] = _decode_kek(settings.LOCAL_KEK, settings.LOCAL_KEK_VERSION)
    return LocalKekProvider(keks, current=settings.LOCAL_KEK_VERSION)


def _build() -> KekProvider:
    if settings.KEK_PROVIDER == "local":
        return local_provider_from_settings()
    if settings.KEK_PROVIDER == "azure":
        from proxy.custody.azure import AzureKekProvider

        return AzureKekProvider(settings.AZURE_KEYVAULT_KEY_ID)
    raise KeyCustodyUnavailable(f"Unknown KEK provider {settings.KEK_PROVIDER!r}.")


_lock = threading.Lock()
_provider: KekProvider | None = None


def kek_provider() -> KekProvider:
    """The process's KEK provider, built once from settings."""
    global _provider
    with _lock:
        if _provider is None:
            _provider = _build()
        return _provider


def kek_provider_set(provider: KekProvider | None) -> None:
    """Install a provider (tests, the Azure fake transport); None rebuilds from settings."""
    global _provider
    with _lock:
        _provider = provider


_PROVIDER_SETTINGS = {
    "KEK_PROVIDER",
    "LOCAL_KEK",
    "LOCAL_KEK_VERSION",
    "LOCAL_KEK_PREVIOUS",
    "AZURE_KEYVAULT_KEY_ID",
}


@receiver(setting_changed)
def _reset_on_setting_change(*, setting: str, **kwargs: Any) -> None:
    if setting in _PROVIDER_SETTINGS:
        kek_provider_set(None)
