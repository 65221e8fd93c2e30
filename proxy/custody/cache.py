"""Decrypted keys, held only in this process's memory: bounded, short-lived, dropped on change."""

import threading
import time
from collections import OrderedDict
from typing import Any

from django.conf import settings

CacheKey = tuple[str, str, str, Any]  # (tenant short id, credential id, kek id, rotated_at)


class PlaintextCache:
    """An LRU with a TTL. Never backed by Redis or anything shared over the network."""

    def __init__(self, maxsize: int = 1024) -> None:
        self._maxsize = maxsize
        self._items: OrderedDict[CacheKey, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: CacheKey) -> str | None:
        now = time.monotonic()
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            if item[0] <= now:
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return item[1]

    def put(self, key: CacheKey, value: str) -> None:
        expires = time.monotonic() + settings.KEY_CACHE_TTL_SECONDS
        with self._lock:
            self._items[key] = (expires, value)
            self._items.move_to_end(key)
            while len(self._items) > self._maxsize:
                self._items.popitem(last=False)

    def drop(self, credential_id: Any) -> None:
        """Forget every cached version of one credential."""
        wanted = str(credential_id)
        with self._lock:
            for key in [k for k in self._items if k[1] == wanted]:
                del self._items[key]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


plaintext_cache = PlaintextCache()
