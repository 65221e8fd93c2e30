"""Exact cost of one Claude API call from its `usage`, from an effective-dated price book.

Pure Python (stdlib + Decimal), no Django. The rates live in `proxy/pricebook.json`; see
docs/pricing.md for the rules, sources and why `worst_case_cost` never under-reserves.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

__all__ = [
    "PRICE_BOOK_VERSION",
    "Cost",
    "Rates",
    "model_known",
    "usage_cost",
    "worst_case_cost",
]

_BOOK_PATH = Path(__file__).with_name("pricebook.json")
_MILLION = Decimal(1_000_000)
_QUANTUM = Decimal("1e-12")
_ZERO = Decimal(0).quantize(_QUANTUM)
_DATED_SUFFIX = re.compile(r"-(\d{8}|latest)$")


@dataclass(frozen=True)
class Rates:
    """USD per million tokens for each token category."""

    input: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    cache_read: Decimal
    output: Decimal

    @classmethod
    def from_json(cls, raw: Mapping[str, str]) -> Rates:
        return cls(
            input=Decimal(raw["input"]),
            cache_write_5m=Decimal(raw["cache_write_5m"]),
            cache_write_1h=Decimal(raw["cache_write_1h"]),
            cache_read=Decimal(raw["cache_read"]),
            output=Decimal(raw["output"]),
        )

    @property
    def max_input_side(self) -> Decimal:
        return max(self.input, self.cache_write_5m, self.cache_write_1h, self.cache_read)


@dataclass(frozen=True)
class PriceEntry:
    family: str
    aliases: tuple[str, ...]
    effective_from: date
    rates: Rates
    long_prompt_above: int | None  # total input tokens above which `long_prompt_rates` apply
    long_prompt_rates: Rates | None
    fast_multiplier: Decimal | None
    us_multiplier: Decimal | None

    def rates_for(self, total_input_tokens: int) -> Rates:
        if (
            self.long_prompt_above is not None
            and self.long_prompt_rates is not None
            and total_input_tokens > self.long_prompt_above
        ):
            return self.long_prompt_rates
        return self.rates

    @property
    def highest_rates(self) -> Rates:
        return self.long_prompt_rates or self.rates


@dataclass(frozen=True)
class PriceBook:
    version: str
    web_search_usd_per_request: Decimal
    batch_multiplier: Decimal
    entries: tuple[PriceEntry, ...]
    by_name: dict[str, tuple[PriceEntry, ...]]  # family or alias -> entries, newest first

    def entry(self, model: str, at: datetime) -> PriceEntry | None:
        """The entry in force for `model` (family, alias or dated id) at `at`, or None."""
        candidates = self.by_name.get(model)
        if candidates is None:
            stripped = _DATED_SUFFIX.sub("", model)
            candidates = self.by_name.get(stripped) if stripped != model else None
        if not candidates:
            return None
        day = _as_utc(at).date()
        for entry in candidates:
            if entry.effective_from <= day:
                return entry
        return None


def _as_utc(at: datetime) -> datetime:
    """Naive datetimes are taken as UTC (the price book's effective dates are UTC days)."""
    if at.tzinfo is None:
        return at.replace(tzinfo=UTC)
    return at.astimezone(UTC)


def load_price_book(path: Path = _BOOK_PATH) -> PriceBook:
    raw = json.loads(path.read_text(encoding="utf-8"))
    entries: list[PriceEntry] = []
    for item in raw["models"]:
        long_prompt = item.get("long_prompt")
        entries.append(
            PriceEntry(
                family=item["family"],
                aliases=tuple(item.get("aliases", ())),
                effective_from=date.fromisoformat(item["effective_from"]),
                rates=Rates.from_json(item["rates"]),
                long_prompt_above=int(long_prompt["above_input_tokens"]) if long_prompt else None,
                long_prompt_rates=Rates.from_json(long_prompt["rates"]) if long_prompt else None,
                fast_multiplier=Decimal(item["fast_multiplier"])
                if item.get("fast_multiplier")
                else None,
                us_multiplier=Decimal(item["us_multiplier"]) if item.get("us_multiplier") else None,
            )
        )
    by_name: dict[str, list[PriceEntry]] = {}
    for entry in entries:
        for name in (entry.family, *entry.aliases):
            by_name.setdefault(name, []).append(entry)
    return PriceBook(
        version=raw["version"],
        web_search_usd_per_request=Decimal(raw["web_search_usd_per_request"]),
        batch_multiplier=Decimal(raw["batch_multiplier"]),
        entries=tuple(entries),
        by_name={
            name: tuple(sorted(group, key=lambda e: e.effective_from, reverse=True))
            for name, group in by_name.items()
        },
    )


BOOK = load_price_book()
PRICE_BOOK_VERSION: str = BOOK.version


@dataclass(frozen=True)
class Cost:
    """Cost of one call in USD, exact, quantized to 12 decimal places (no rounding happens)."""

    total_usd: Decimal
    input_usd: Decimal
    cache_write_5m_usd: Decimal
    cache_write_1h_usd: Decimal
    cache_read_usd: Decimal
    output_usd: Decimal
    server_tools_usd: Decimal
    price_book_version: str
    priced: bool  # False (all zero) when the model is unknown at that date

    def breakdown(self) -> dict[str, str]:
        """Decimal strings, for storage in JSON."""
        return {
            "total_usd": f"{self.total_usd:f}",
            "input_usd": f"{self.input_usd:f}",
            "cache_write_5m_usd": f"{self.cache_write_5m_usd:f}",
            "cache_write_1h_usd": f"{self.cache_write_1h_usd:f}",
            "cache_read_usd": f"{self.cache_read_usd:f}",
            "output_usd": f"{self.output_usd:f}",
            "server_tools_usd": f"{self.server_tools_usd:f}",
            "price_book_version": self.price_book_version,
            "priced": "true" if self.priced else "false",
        }


def _int(value: Any) -> int:
    """A token count from a usage field: null, missing, negative or non-numeric -> 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return max(int(value), 0)


def _sub(usage: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = usage.get(key)
    return value if isinstance(value, Mapping) else {}


def model_known(model: str, *, at: datetime) -> bool:
    """Whether the price book has rates for `model` (family, alias or dated id) at `at`."""
    return BOOK.entry(model, at) is not None


def usage_cost(model: str, usage: Mapping[str, Any], *, at: datetime, batch: bool = False) -> Cost:
    """Exact cost of an Anthropic `usage` object (non-streaming body or final stream usage).

    `input_tokens` is the uncached remainder. Cache writes are split by
    `cache_creation.ephemeral_{5m,1h}_input_tokens`; without the split all writes bill at the
    5-minute rate, and any excess of `cache_creation_input_tokens` over the split also does.
    Batch pricing applies when `batch` is true or `usage.service_tier == "batch"`.
    """
    entry = BOOK.entry(model, at)
    if entry is None:
        return Cost(_ZERO, _ZERO, _ZERO, _ZERO, _ZERO, _ZERO, _ZERO, BOOK.version, False)

    input_tokens = _int(usage.get("input_tokens"))
    cache_creation_total = _int(usage.get("cache_creation_input_tokens"))
    cache_read = _int(usage.get("cache_read_input_tokens"))
    output_tokens = _int(usage.get("output_tokens"))
    split = _sub(usage, "cache_creation")
    write_5m = _int(split.get("ephemeral_5m_input_tokens"))
    write_1h = _int(split.get("ephemeral_1h_input_tokens"))
    if cache_creation_total > write_5m + write_1h:
        write_5m += cache_creation_total - write_5m - write_1h
    web_searches = _int(_sub(usage, "server_tool_use").get("web_search_requests"))

    total_input = input_tokens + write_5m + write_1h + cache_read
    rates = entry.rates_for(total_input)

    multiplier = Decimal(1)
    if batch or usage.get("service_tier") == "batch":
        multiplier *= BOOK.batch_multiplier
    if usage.get("speed") == "fast" and entry.fast_multiplier is not None:
        multiplier *= entry.fast_multiplier
    if usage.get("inference_geo") == "us" and entry.us_multiplier is not None:
        multiplier *= entry.us_multiplier

    with localcontext() as ctx:
        ctx.prec = 60  # far above what any realistic count needs: every product below is exact

        def part(tokens: int, rate: Decimal) -> Decimal:
            return (Decimal(tokens) * rate * multiplier / _MILLION).quantize(_QUANTUM)

        input_usd = part(input_tokens, rates.input)
        cw5_usd = part(write_5m, rates.cache_write_5m)
        cw1h_usd = part(write_1h, rates.cache_write_1h)
        cr_usd = part(cache_read, rates.cache_read)
        out_usd = part(output_tokens, rates.output)
        tools_usd = (Decimal(web_searches) * BOOK.web_search_usd_per_request).quantize(_QUANTUM)
        total = (input_usd + cw5_usd + cw1h_usd + cr_usd + out_usd + tools_usd).quantize(_QUANTUM)
    return Cost(
        total_usd=total,
        input_usd=input_usd,
        cache_write_5m_usd=cw5_usd,
        cache_write_1h_usd=cw1h_usd,
        cache_read_usd=cr_usd,
        output_usd=out_usd,
        server_tools_usd=tools_usd,
        price_book_version=BOOK.version,
        priced=True,
    )


def _most_expensive() -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """(input-side rate, output rate, fast multiplier, us multiplier): maxima over the book.

    Every entry counts, whatever its date, so an unknown model is never under-reserved.
    """
    in_rate = out_rate = Decimal(0)
    fast = us = Decimal(1)
    for entry in BOOK.entries:
        highest = entry.highest_rates
        in_rate = max(in_rate, highest.max_input_side, entry.rates.max_input_side)
        out_rate = max(out_rate, highest.output, entry.rates.output)
        fast = max(fast, entry.fast_multiplier or Decimal(1))
        us = max(us, entry.us_multiplier or Decimal(1))
    return in_rate, out_rate, fast, us


def worst_case_cost(
    model: str,
    *,
    input_tokens: int,
    max_tokens: int,
    at: datetime,
    batch: bool = False,
    speed: str | None = None,
    inference_geo: str | None = None,
    web_search_requests: int = 0,
) -> Decimal:
    """An upper bound of the cost of a call, for budget reservations. Never under-estimates.

    `input_tokens` must be an upper bound of the request's total input tokens (uncached + cache
    writes + cache reads). Every input token is charged at the highest input-side rate (input,
    5m write, 1h write, cache read) of the tier the request can reach, all `max_tokens` at that
    tier's output rate; batch, fast and US multipliers as requested. An unknown model gets the
    highest rates and multipliers in the whole book. `web_search_requests` (e.g. the tool's
    `max_uses`) adds the per-search fee. See docs/pricing.md.
    """
    entry = BOOK.entry(model, at)
    input_tokens = max(int(input_tokens), 0)
    max_tokens = max(int(max_tokens), 0)
    if entry is None:
        in_rate, out_rate, fast, us = _most_expensive()
    else:
        rates = entry.rates_for(input_tokens)
        in_rate, out_rate = rates.max_input_side, rates.output
        fast = entry.fast_multiplier or Decimal(1)
        us = entry.us_multiplier or Decimal(1)
    multiplier = Decimal(1)
    if batch:
        multiplier *= BOOK.batch_multiplier
    if speed == "fast":
        multiplier *= fast
    if inference_geo == "us":
        multiplier *= us
    with localcontext() as ctx:
        ctx.prec = 60
        tokens_usd = (
            (Decimal(input_tokens) * in_rate + Decimal(max_tokens) * out_rate)
            * multiplier
            / _MILLION
        )
        tools_usd = Decimal(max(int(web_search_requests), 0)) * BOOK.web_search_usd_per_request
        return (tokens_usd + tools_usd).quantize(_QUANTUM)
