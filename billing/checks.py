"""Deploy checks for billing: a live deployment must not point at Paddle's sandbox."""

from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning, register


@register("billing", deploy=True)
def check_paddle_environment(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    problems: list[Any] = []
    if settings.PADDLE_ENVIRONMENT not in {"sandbox", "live"}:
        problems.append(
            Error(
                f"PADDLE_ENVIRONMENT is {settings.PADDLE_ENVIRONMENT!r}.",
                hint="Set it to 'sandbox' or 'live'.",
                id="tokenscope.E003",
            )
        )
    elif settings.PADDLE_ENVIRONMENT == "sandbox" and not settings.DEBUG:
        problems.append(
            Error(
                "PADDLE_ENVIRONMENT is 'sandbox' while DEBUG is off: customers could not pay.",
                hint="Set PADDLE_ENVIRONMENT=live with live API key, client token and webhook "
                "secrets; a staging deployment that means to use the sandbox silences "
                "tokenscope.E002 in SILENCED_SYSTEM_CHECKS.",
                id="tokenscope.E002",
            )
        )
    if not settings.DEBUG and not settings.PADDLE_WEBHOOK_SECRETS:
        problems.append(
            Warning(
                "PADDLE_WEBHOOK_SECRETS is empty: every Paddle webhook will be refused.",
                id="tokenscope.W020",
            )
        )
    return problems
