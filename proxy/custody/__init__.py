"""Key custody: envelope-encrypted Anthropic keys and the hot-path decryption the proxy calls."""

from typing import TYPE_CHECKING

from django.views.decorators.debug import sensitive_variables

from proxy.custody.cache import plaintext_cache
from proxy.custody.envelope import Sealed, associated_data, seal, unseal
from proxy.custody.errors import KeyCustodyError, KeyCustodyTampered, KeyCustodyUnavailable
from proxy.custody.providers import KekProvider, kek_provider, kek_provider_set

if TYPE_CHECKING:
    from proxy.models import AnthropicCredential
    from tenants.models import Tenant

__all__ = [
    "KekProvider",
    "KeyCustodyError",
    "KeyCustodyTampered",
    "KeyCustodyUnavailable",
    "anthropic_key_plaintext",
    "credential_aad",
    "kek_provider",
    "kek_provider_set",
    "plaintext_cache",
]


def credential_aad(credential: "AnthropicCredential", *, tenant: "Tenant") -> bytes:
    return associated_data(
        purpose=credential.purpose, tenant_short_id=tenant.short_id, record_id=credential.pk
    )


def sealed_of(credential: "AnthropicCredential") -> Sealed:
    return Sealed(
        wrapped_dek=bytes(credential.wrapped_dek),
        kek_id=credential.kek_id,
        wrap_alg=credential.wrap_alg,
        nonce=bytes(credential.nonce),
        ciphertext=bytes(credential.ciphertext),
        alg=credential.alg,
        enc_version=credential.enc_version,
    )


@sensitive_variables("plaintext", "cached")
def anthropic_key_plaintext(credential: "AnthropicCredential", *, tenant: "Tenant") -> str:
    """The decrypted key: from this process's cache, else unwrapped through the KEK provider.

    Raises KeyCustodyUnavailable when the provider is unreachable and the cache is cold, and
    KeyCustodyTampered when the row fails authentication. There is no fallback.
    """
    key = (tenant.short_id, str(credential.pk), credential.kek_id, credential.rotated_at)
    cached = plaintext_cache.get(key)
    if cached is not None:
        return cached
    plaintext = unseal(
        sealed_of(credential),
        aad=credential_aad(credential, tenant=tenant),
        provider=kek_provider(),
    )
    plaintext_cache.put(key, plaintext)
    return plaintext


@sensitive_variables("plaintext")
def seal_for(credential: "AnthropicCredential", plaintext: str, *, tenant: "Tenant") -> Sealed:
    """Encrypt `plaintext` for this credential row (its id must be set already)."""
    return seal(plaintext, aad=credential_aad(credential, tenant=tenant), provider=kek_provider())
