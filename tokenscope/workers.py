"""The gunicorn worker class for production (Procfile `web`)."""

from typing import Any

from uvicorn_worker import UvicornWorker


class Worker(UvicornWorker):
    """Uvicorn under gunicorn, without uvicorn's own X-Forwarded-For handling: the client address
    is resolved by tokenscope.lib.net against TOKENSCOPE_TRUSTED_PROXIES, and only there."""

    CONFIG_KWARGS: dict[str, Any] = {**UvicornWorker.CONFIG_KWARGS, "proxy_headers": False}
