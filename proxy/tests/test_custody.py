"""Envelope encryption of stored Anthropic keys, against the local and the Azure KEK providers."""

import base64
import io
import json
import os
from collections.abc import Iterator
from dataclasses import replace

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from conftest import in_tenant
from proxy.checks import check_kek_provider
from proxy.custody import (
    KeyCustodyTampered,
    KeyCustodyUnavailable,
    anthropic_key_plaintext,
    kek_provider,
    plaintext_cache,
)
from proxy.custody.envelope import associated_data, seal, unseal
from proxy.custody.providers import LocalKekProvider
from proxy.models import AnthropicCredential
from proxy.services import anthropic_credential_set
from proxy.tests.custody_support import (
    MARKER_KEY,
    OTHER_KEY,
    ProviderUnderTest,
    make_azure,
    provider_under_test,
    use,
)


@pytest.fixture(params=["local", "azure"])
def kek(request: pytest.FixtureRequest) -> Iterator[ProviderUnderTest]:
    """Each custody test runs against both providers; the azure one goes through the real SDK."""
    yield from provider_under_test(request.param)


AAD = associated_data(purpose="anthropic_api_key", tenant_short_id="abc123defg", record_id="r-1")


def _flip(data: bytes, index: int) -> bytes:
    flipped = bytearray(data)
    flipped[index % len(flipped)] ^= 0x01
    return bytes(flipped)


def test_seal_then_unseal_round_trips_and_records_the_kek_version(kek: ProviderUnderTest) -> None:
    sealed = seal(MARKER_KEY, aad=AAD, provider=kek.provider)
    assert sealed.kek_id == kek.provider.current_kek_id
    assert sealed.wrap_alg == ("A256KW" if kek.name == "local" else "RSA-OAEP-256")
    assert len(sealed.nonce) == 12
    assert MARKER_KEY.encode() not in sealed.ciphertext
    assert unseal(sealed, aad=AAD, provider=kek.provider) == MARKER_KEY


@pytest.mark.parametrize("field", ["ciphertext", "nonce", "wrapped_dek"])
@pytest.mark.parametrize("index", [0, 7, -1])
def test_a_flipped_bit_in_any_stored_field_fails_to_decrypt(
    kek: ProviderUnderTest, field: str, index: int
) -> None:
    sealed = seal(MARKER_KEY, aad=AAD, provider=kek.provider)
    tampered = replace(sealed, **{field: _flip(getattr(sealed, field), index)})
    with pytest.raises(KeyCustodyTampered):
        unseal(tampered, aad=AAD, provider=kek.provider)


@pytest.mark.parametrize(
    "other",
    [
        {"tenant_short_id": "zzz999yyyx"},
        {"record_id": "r-2"},
        {"purpose": "paddle_api_key"},
    ],
)
def test_a_ciphertext_under_any_other_associated_data_fails(
    kek: ProviderUnderTest, other: dict
) -> None:
    sealed = seal(MARKER_KEY, aad=AAD, provider=kek.provider)
    parts = {"purpose": "anthropic_api_key", "tenant_short_id": "abc123defg", "record_id": "r-1"}
    with pytest.raises(KeyCustodyTampered):
        unseal(sealed, aad=associated_data(**{**parts, **other}), provider=kek.provider)


def test_no_nonce_or_data_key_repeats_over_10000_encryptions() -> None:
    provider = LocalKekProvider({"1": os.urandom(32)}, current="1")
    nonces, wrapped = set(), set()
    for _ in range(10_000):
        sealed = seal("sk-ant-api03-x", aad=AAD, provider=provider)
        nonces.add(sealed.nonce)
        wrapped.add(sealed.wrapped_dek)
    assert len(nonces) == 10_000
    assert len(wrapped) == 10_000


def _store(tenant, key: str = MARKER_KEY, project=None) -> AnthropicCredential:  # type: ignore[no-untyped-def]
    with in_tenant(tenant):
        return anthropic_credential_set(None, tenant=tenant, key=key, project=project)


def test_a_stored_key_round_trips_through_the_database(kek: ProviderUnderTest, tenant_a) -> None:
    stored = _store(tenant_a)
    with in_tenant(tenant_a):
        row = AnthropicCredential.objects.get(pk=stored.pk)
    assert row.kek_id == kek.provider.current_kek_id
    assert row.hint == MARKER_KEY[-4:]
    assert (row.alg, row.enc_version) == ("A256GCM", 1)
    assert anthropic_key_plaintext(row, tenant=tenant_a) == MARKER_KEY


def test_a_ciphertext_copied_onto_another_tenants_row_fails(
    kek: ProviderUnderTest, tenant_a, tenant_b
) -> None:
    mine = _store(tenant_a)
    theirs = _store(tenant_b, key=OTHER_KEY)
    with in_tenant(tenant_b):
        AnthropicCredential.objects.filter(pk=theirs.pk).update(
            wrapped_dek=mine.wrapped_dek, nonce=mine.nonce, ciphertext=mine.ciphertext
        )
        copied = AnthropicCredential.objects.get(pk=theirs.pk)
    with pytest.raises(KeyCustodyTampered):
        anthropic_key_plaintext(copied, tenant=tenant_b)


def test_a_whole_row_copied_into_another_tenant_with_its_id_fails(
    kek: ProviderUnderTest, tenant_a, tenant_b
) -> None:
    mine = _store(tenant_a)
    assert anthropic_key_plaintext(mine, tenant=tenant_a) == MARKER_KEY  # warm the cache too
    with in_tenant(tenant_b):
        AnthropicCredential.objects.all().delete()
        mine.save(force_insert=True)
        copied = AnthropicCredential.objects.get(pk=mine.pk)
    with pytest.raises(KeyCustodyTampered):
        anthropic_key_plaintext(copied, tenant=tenant_b)


def test_a_ciphertext_copied_onto_another_record_of_the_same_tenant_fails(
    kek: ProviderUnderTest, tenant_a
) -> None:
    from proxy.models import Project

    default = _store(tenant_a)
    with in_tenant(tenant_a):
        project = Project.objects.create(name="Copy target")
    other = _store(tenant_a, key=OTHER_KEY, project=project)
    with in_tenant(tenant_a):
        AnthropicCredential.objects.filter(pk=other.pk).update(
            wrapped_dek=default.wrapped_dek, nonce=default.nonce, ciphertext=default.ciphertext
        )
        copied = AnthropicCredential.objects.get(pk=other.pk)
    with pytest.raises(KeyCustodyTampered):
        anthropic_key_plaintext(copied, tenant=tenant_a)


def _rewrap(tenant) -> dict:  # type: ignore[no-untyped-def]
    out = io.StringIO()
    call_command("rewrap_keys", "--json", "--tenant", tenant.slug, stdout=out)
    return json.loads(out.getvalue())


def test_rewrap_keys_leaves_ciphertexts_unchanged_and_is_safe_to_rerun(
    kek: ProviderUnderTest, tenant_a
) -> None:
    stored = _store(tenant_a)
    old_kek = stored.kek_id
    use(kek.rotate())
    first = _rewrap(tenant_a)
    assert first["rewrapped"] == 1
    assert first["failed"] == 0
    assert first["kek_id"] == kek_provider().current_kek_id != old_kek
    with in_tenant(tenant_a):
        row = AnthropicCredential.objects.get(pk=stored.pk)
        from audit.models import AuditEvent

        event = AuditEvent.objects.get(action="anthropic_credential.rewrapped")
    assert bytes(row.ciphertext) == bytes(stored.ciphertext)
    assert bytes(row.nonce) == bytes(stored.nonce)
    assert bytes(row.wrapped_dek) != bytes(stored.wrapped_dek)
    assert row.kek_id == kek_provider().current_kek_id
    assert event.changes == {"kek_id": [old_kek, row.kek_id]}
    plaintext_cache.clear()
    assert anthropic_key_plaintext(row, tenant=tenant_a) == MARKER_KEY
    second = _rewrap(tenant_a)
    assert (second["rewrapped"], second["already_current"]) == (0, 1)


def test_rewrap_with_settings_keeps_older_local_kek_versions_readable(tenant_a) -> None:
    old, new = os.urandom(32), os.urandom(32)
    b64 = {version: base64.b64encode(key).decode() for version, key in (("1", old), ("2", new))}
    try:
        with override_settings(KEK_PROVIDER="local", LOCAL_KEK=b64["1"], LOCAL_KEK_VERSION="1"):
            stored = _store(tenant_a)
            assert stored.kek_id == "local:1"
        with override_settings(
            KEK_PROVIDER="local",
            LOCAL_KEK=b64["2"],
            LOCAL_KEK_VERSION="2",
            LOCAL_KEK_PREVIOUS={"1": b64["1"]},
        ):
            plaintext_cache.clear()
            assert anthropic_key_plaintext(stored, tenant=tenant_a) == MARKER_KEY
            assert _rewrap(tenant_a)["rewrapped"] == 1
            with in_tenant(tenant_a):
                row = AnthropicCredential.objects.get(pk=stored.pk)
            assert row.kek_id == "local:2"
        with override_settings(KEK_PROVIDER="local", LOCAL_KEK=b64["2"], LOCAL_KEK_VERSION="2"):
            plaintext_cache.clear()
            assert anthropic_key_plaintext(row, tenant=tenant_a) == MARKER_KEY
    finally:
        plaintext_cache.clear()


def test_kek_outage_with_a_cold_cache_raises_key_custody_unavailable(tenant_a) -> None:
    under_test = make_azure()
    use(under_test.provider)
    try:
        stored = _store(tenant_a)
        use(under_test.rotate())  # a fresh SDK client: nothing cached anywhere
        assert under_test.transport is not None
        under_test.transport.down = True
        with pytest.raises(KeyCustodyUnavailable):
            anthropic_key_plaintext(stored, tenant=tenant_a)
    finally:
        use(None)  # type: ignore[arg-type]


def test_a_warm_cache_serves_the_key_with_no_key_vault_call_even_during_an_outage(
    tenant_a,
) -> None:
    under_test = make_azure()
    use(under_test.provider)
    transport = under_test.transport
    assert transport is not None
    try:
        stored = _store(tenant_a)
        assert anthropic_key_plaintext(stored, tenant=tenant_a) == MARKER_KEY
        calls = len(transport.calls)
        transport.down = True
        assert anthropic_key_plaintext(stored, tenant=tenant_a) == MARKER_KEY
        assert len(transport.calls) == calls
    finally:
        use(None)  # type: ignore[arg-type]


def test_a_missing_local_kek_version_is_unavailable_not_a_fallback(tenant_a) -> None:
    use(LocalKekProvider({"1": os.urandom(32)}, current="1"))
    try:
        stored = _store(tenant_a)
        use(LocalKekProvider({"2": os.urandom(32)}, current="2"))
        with pytest.raises(KeyCustodyUnavailable):
            anthropic_key_plaintext(stored, tenant=tenant_a)
    finally:
        use(None)  # type: ignore[arg-type]


def test_the_azure_provider_wraps_in_key_vault_without_keys_get_permission() -> None:
    under_test = make_azure(allow_get=False)
    sealed = seal(MARKER_KEY, aad=AAD, provider=under_test.provider)
    assert under_test.transport is not None
    operations = [operation for operation, _ in under_test.transport.calls]
    assert "wrapkey" in operations
    assert unseal(sealed, aad=AAD, provider=under_test.provider) == MARKER_KEY
    assert sealed.kek_id.endswith("/keys/tokenscope-kek/v1")
    # The data key crosses to Key Vault wrapped or as a 32-byte DEK, never the Anthropic key.
    assert all(MARKER_KEY.encode() not in body for body in under_test.transport.bodies)


def test_replacing_a_key_drops_the_cached_plaintext(
    kek: ProviderUnderTest, tenant_a, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        first = _store(tenant_a)
    assert anthropic_key_plaintext(first, tenant=tenant_a) == MARKER_KEY
    with django_capture_on_commit_callbacks(execute=True):
        second = _store(tenant_a, key=OTHER_KEY)
    assert second.pk == first.pk
    assert second.rotated_at is not None
    assert len(plaintext_cache) == 0
    assert anthropic_key_plaintext(second, tenant=tenant_a) == OTHER_KEY


def test_the_local_provider_is_refused_by_deploy_checks_without_debug() -> None:
    with override_settings(DEBUG=False, KEK_PROVIDER="local"):
        errors = run_checks(include_deployment_checks=True, tags=["security"])
        assert "tokenscope.E001" in [error.id for error in errors]
        with pytest.raises(Exception, match=r"tokenscope\.E001"):
            call_command("check", "--deploy", "--tag", "security", stdout=io.StringIO())
    with override_settings(DEBUG=True, KEK_PROVIDER="local"):
        assert check_kek_provider() == []
    with override_settings(
        DEBUG=False,
        KEK_PROVIDER="azure",
        AZURE_KEYVAULT_KEY_ID="https://v.vault.azure.net/keys/k/1",
    ):
        assert check_kek_provider() == []


def test_rewrap_keys_counts_failures_and_exits_non_zero_when_the_kek_is_down(tenant_a) -> None:
    under_test = make_azure()
    use(under_test.provider)
    try:
        _store(tenant_a)
        use(under_test.rotate())
        assert under_test.transport is not None
        under_test.transport.down = True
        out = io.StringIO()
        with pytest.raises(CommandError, match="1 rows could not be rewrapped"):
            call_command("rewrap_keys", "--json", "--tenant", tenant_a.slug, stdout=out)
        assert json.loads(out.getvalue())["failed"] == 1
        with in_tenant(tenant_a):
            assert AnthropicCredential.objects.get().kek_id.endswith("/v1")
    finally:
        use(None)  # type: ignore[arg-type]
