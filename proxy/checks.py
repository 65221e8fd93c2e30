"""Deploy checks of key custody."""

from typing import Any

from django.conf import settings
from django.core.checks import Error, register


@register("security", deploy=True)
def check_kek_provider(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """tokenscope.E001: the local KEK provider is for development; production uses Key Vault."""
    if settings.KEK_PROVIDER == "local" and not settings.DEBUG:
        return [
            Error(
                "The local KEK provider is refused outside DEBUG.",
                hint="Set TOKENSCOPE_KEK_PROVIDER=azure and AZURE_KEYVAULT_KEY_ID to a "
                "versioned Key Vault key id.",
                id="tokenscope.E001",
            )
        ]
    if settings.KEK_PROVIDER == "azure" and not settings.AZURE_KEYVAULT_KEY_ID:
        return [
            Error(
                "TOKENSCOPE_KEK_PROVIDER=azure needs AZURE_KEYVAULT_KEY_ID.",
                id="tokenscope.E003",
            )
        ]
    return []
