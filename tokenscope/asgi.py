"""ASGI entry: /v1/ goes to the proxy gateway (raw ASGI, streaming), everything else to Django."""

import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenscope.settings")

django_application = get_asgi_application()

from proxy.gateway import Gateway  # noqa: E402  (needs the app registry loaded above)

gateway = Gateway()


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan" or (
        scope["type"] == "http" and scope["path"].startswith("/v1/")
    ):
        await gateway(scope, receive, send)
    else:
        await django_application(scope, receive, send)
