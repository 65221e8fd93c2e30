"""Envelope encryption (billing-keys-privacy.md §2.4): a fresh AES-256-GCM data key per secret."""

import os
from dataclasses import dataclass, replace
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.views.decorators.debug import sensitive_variables

from proxy.custody.errors import KeyCustodyTampered
from proxy.custody.providers import KekProvider

ENC_VERSION = 1
ALG = "A256GCM"
NONCE_BYTES = 12


def associated_data(*, purpose: str, tenant_short_id: str, record_id: Any) -> bytes:
    """AAD binding a ciphertext to its purpose, tenant and row; only immutable fields."""
    return b"|".join(
        [b"tokenscope/v1", purpose.encode(), tenant_short_id.encode(), str(record_id).encode()]
    )


@dataclass(frozen=True)
class Sealed:
    """What is stored on the row: never the data key in clear, never the plaintext."""

    wrapped_dek: bytes
    kek_id: str
    wrap_alg: str
    nonce: bytes
    ciphertext: bytes
    alg: str = ALG
    enc_version: int = ENC_VERSION


@sensitive_variables("plaintext", "dek")
def seal(plaintext: str, *, aad: bytes, provider: KekProvider) -> Sealed:
    """Encrypt under a new data key and a random 96-bit nonce; the KEK wraps the data key."""
    dek = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = AESGCM(dek).encrypt(nonce, plaintext.encode(), aad)
    wrapped, kek_id, wrap_alg = provider.wrap(dek)
    del dek  # Python cannot zero memory; drop the reference as early as possible.
    return Sealed(
        wrapped_dek=wrapped, kek_id=kek_id, wrap_alg=wrap_alg, nonce=nonce, ciphertext=ciphertext
    )


@sensitive_variables("dek")
def unseal(sealed: Sealed, *, aad: bytes, provider: KekProvider) -> str:
    """Decrypt; raises KeyCustodyTampered on any change and KeyCustodyUnavailable on KEK trouble."""
    if sealed.enc_version != ENC_VERSION or sealed.alg != ALG or len(sealed.nonce) != NONCE_BYTES:
        raise KeyCustodyTampered("Unknown encryption format.")
    dek = provider.unwrap(sealed.wrapped_dek, sealed.kek_id, sealed.wrap_alg)
    if len(dek) != 32:
        raise KeyCustodyTampered("The data key has the wrong length.")
    try:
        return AESGCM(dek).decrypt(sealed.nonce, sealed.ciphertext, aad).decode()
    except InvalidTag as exc:
        raise KeyCustodyTampered("The ciphertext failed authentication.") from exc


@sensitive_variables("dek")
def rewrap(sealed: Sealed, *, provider: KekProvider) -> Sealed:
    """Wrap the same data key under the provider's current KEK; nonce and ciphertext unchanged."""
    dek = provider.unwrap(sealed.wrapped_dek, sealed.kek_id, sealed.wrap_alg)
    wrapped, kek_id, wrap_alg = provider.wrap(dek)
    del dek
    return replace(sealed, wrapped_dek=wrapped, kek_id=kek_id, wrap_alg=wrap_alg)
