"""Shared helpers for the custody tests: KEK providers under test and a marker key."""

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from proxy.custody import kek_provider_set, plaintext_cache
from proxy.custody.azure import AzureKekProvider
from proxy.custody.providers import KekProvider, LocalKekProvider
from proxy.tests.fake_keyvault import FakeKeyVaultTransport, StaticCredential, key_id

# A syntactically valid Anthropic key whose middle is unique enough to search for anywhere.
MARKER_MIDDLE = "TsCustodyMarker9QzX"
MARKER_KEY = "sk-ant-api03-" + MARKER_MIDDLE + "k7Vw" * 18 + "-Jp_3hAA"
OTHER_KEY = "sk-ant-api03-" + "OtherKey4Lm" + "h2Rt" * 20 + "_BbAA"


@dataclass
class ProviderUnderTest:
    """A provider on KEK version 1, and how to move it to version 2 (a KEK rotation)."""

    name: str
    provider: KekProvider
    rotate: Any
    transport: FakeKeyVaultTransport | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def make_local() -> ProviderUnderTest:
    keks = {"1": os.urandom(32), "2": os.urandom(32)}
    return ProviderUnderTest(
        name="local",
        provider=LocalKekProvider({"1": keks["1"]}, current="1"),
        rotate=lambda: LocalKekProvider(keks, current="2"),
    )


def make_azure(*, allow_get: bool = True) -> ProviderUnderTest:
    transport = FakeKeyVaultTransport(allow_get=allow_get)
    credential = StaticCredential()

    def build(version: str) -> AzureKekProvider:
        return AzureKekProvider(
            key_id(version), credential=credential, transport=transport, retry_total=0
        )

    return ProviderUnderTest(
        name="azure", provider=build("v1"), rotate=lambda: build("v2"), transport=transport
    )


def provider_under_test(name: str) -> Iterator[ProviderUnderTest]:
    """Body of each test module's `kek` fixture: install a provider, clean up afterwards."""
    under_test = make_local() if name == "local" else make_azure()
    kek_provider_set(under_test.provider)
    plaintext_cache.clear()
    yield under_test
    kek_provider_set(None)
    plaintext_cache.clear()


def use(provider: KekProvider) -> None:
    kek_provider_set(provider)
    plaintext_cache.clear()
