"""One shared redis-py client for counters the proxy reads (not the Django cache)."""

from functools import lru_cache

import redis
from django.conf import settings


@lru_cache(maxsize=4)
def _client(url: str) -> "redis.Redis":
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def get_redis() -> "redis.Redis":
    """The process-wide Redis client for REDIS_URL (connection-pooled, thread-safe)."""
    return _client(settings.REDIS_URL)
