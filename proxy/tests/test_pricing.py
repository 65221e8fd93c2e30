"""Price book and cost: every expected figure below is computed by hand, as literal Decimals."""

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, localcontext
from itertools import product
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy import pricing
from proxy.pricing import PRICE_BOOK_VERSION, Cost, model_known, usage_cost, worst_case_cost

FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
D = Decimal

# Rates per family (input, 5m write, 1h write, cache read, output), typed from the reference's
# price table (§5.2), independently of proxy/pricebook.json.
TABLE = {
    "claude-fable-5-2": ("8", "10", "16", "0.20", "40"),
    "claude-mythos-5-2": ("8", "10", "16", "0.20", "40"),
    "claude-fable-5-1": ("10", "12.50", "20", "0.25", "50"),
    "claude-mythos-5-1": ("10", "12.50", "20", "0.25", "50"),
    "claude-fable-5": ("10", "12.50", "20", "1.00", "50"),
    "claude-mythos-5": ("10", "12.50", "20", "1.00", "50"),
    "claude-mythos-preview": ("10", "12.50", "20", "1.00", "50"),
    "claude-opus-5-5": ("4", "5", "8", "0.20", "20"),
    "claude-opus-5": ("5", "6.25", "10", "0.50", "25"),
    "claude-opus-4-8": ("5", "6.25", "10", "0.50", "25"),
    "claude-opus-4-7": ("5", "6.25", "10", "0.50", "25"),
    "claude-opus-4-6": ("5", "6.25", "10", "0.50", "25"),
    "claude-opus-4-5": ("5", "6.25", "10", "0.50", "25"),
    "claude-opus-4-1": ("15", "18.75", "30", "1.50", "75"),
    "claude-opus-4-0": ("15", "18.75", "30", "1.50", "75"),
    "claude-sonnet-5-5": ("2", "2.50", "4", "0.10", "10"),
    "claude-sonnet-5": ("2", "2.50", "4", "0.20", "10"),
    "claude-sonnet-4-6": ("3", "3.75", "6", "0.30", "15"),
    "claude-sonnet-4-5": ("3", "3.75", "6", "0.30", "15"),
    "claude-sonnet-4-0": ("3", "3.75", "6", "0.30", "15"),
    "claude-3-7-sonnet": ("3", "3.75", "6", "0.30", "15"),
    "claude-haiku-5-5": ("0.10", "0.125", "0.20", "0.01", "0.50"),
    "claude-haiku-4-5": ("1", "1.25", "2", "0.10", "5"),
    "claude-3-5-haiku": ("0.80", "1", "1.6", "0.08", "4"),
    "claude-3-opus": ("15", "18.75", "30", "1.50", "75"),
    "claude-3-haiku": ("0.25", "0.30", "0.50", "0.03", "1.25"),
}


def usage(
    inp: int = 0, cw5: int = 0, cw1h: int = 0, cr: int = 0, out: int = 0, **extra: object
) -> dict:
    return {
        "input_tokens": inp,
        "cache_creation_input_tokens": cw5 + cw1h,
        "cache_read_input_tokens": cr,
        "cache_creation": {"ephemeral_5m_input_tokens": cw5, "ephemeral_1h_input_tokens": cw1h},
        "output_tokens": out,
        **extra,
    }


def parts(cost: Cost) -> tuple[Decimal, ...]:
    return (
        cost.input_usd,
        cost.cache_write_5m_usd,
        cost.cache_write_1h_usd,
        cost.cache_read_usd,
        cost.output_usd,
        cost.server_tools_usd,
        cost.total_usd,
    )


@pytest.mark.parametrize(("model", "rates"), TABLE.items())
def test_each_family_bills_each_token_kind_at_its_table_rate(model, rates):
    # 20,000 tokens of each input kind (80,000 in all) keeps every family under its tier.
    cost = usage_cost(model, usage(20_000, 20_000, 20_000, 20_000, 1_000_000), at=NOW)
    inp, cw5, cw1h, cr, out = (D(r) for r in rates)
    k = D("0.02")
    assert cost.priced
    assert cost.input_usd == inp * k
    assert cost.cache_write_5m_usd == cw5 * k
    assert cost.cache_write_1h_usd == cw1h * k
    assert cost.cache_read_usd == cr * k
    assert cost.output_usd == out
    assert cost.total_usd == (inp + cw5 + cw1h + cr) * k + out


def test_fixture_message_cache_usage_opus_4_6_costs_exactly():
    body = json.loads((FIXTURES / "message-cache-usage.json").read_text())
    cost = usage_cost(body["model"], body["usage"], at=NOW)
    # input 2095 x $5; the split says 0/0 but 2051 were written -> all at 5m x $6.25;
    # cache read 2051 x $0.50; output 503 x $25; 2 web fetches are free.
    assert parts(cost) == (
        D("0.010475"),
        D("0.01281875"),
        D(0),
        D("0.0010255"),
        D("0.012575"),
        D(0),
        D("0.03689425"),
    )
    assert cost.price_book_version == PRICE_BOOK_VERSION
    assert cost.breakdown()["total_usd"] == "0.036894250000"
    assert cost.breakdown()["cache_write_1h_usd"] == "0.000000000000"


def test_dated_haiku_4_5_id_prices_as_its_family():
    body = json.loads((FIXTURES / "message-tool-use.json").read_text())
    cost = usage_cost(body["model"], body["usage"], at=NOW)
    assert cost.total_usd == D("0.000701") + D("0.000465")


def test_web_search_costs_ten_dollars_per_thousand_on_top_of_tokens():
    body = json.loads((FIXTURES / "message-web-search-server-tool.json").read_text())
    cost = usage_cost(body["model"], body["usage"], at=NOW)
    assert cost.server_tools_usd == D("0.01")
    assert cost.total_usd == D("0.011306") + D("0.000815") + D("0.01")


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-opus-4-6-20260205", "claude-opus-4-6"),
        ("claude-opus-4-7-20260416", "claude-opus-4-7"),
        ("claude-opus-4-5-20251101", "claude-opus-4-5"),
        ("claude-opus-4-20250514", "claude-opus-4-0"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4-0"),
        ("claude-3-7-sonnet-20250219", "claude-3-7-sonnet"),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("claude-3-opus-20240229", "claude-3-opus"),
        ("claude-3-haiku-20240307", "claude-3-haiku"),
        ("claude-sonnet-5-5-20261201", "claude-sonnet-5-5"),
    ],
)
def test_dated_ids_map_to_their_family(model, family):
    u = usage(1000, 10, 20, 30, 40)
    assert usage_cost(model, u, at=NOW) == usage_cost(family, u, at=NOW)
    assert model_known(model, at=NOW)


def test_unknown_model_is_unpriced_and_zero():
    cost = usage_cost("claude-nonexistent-9", usage(1000, out=10), at=NOW)
    assert not cost.priced
    assert cost.total_usd == D(0)
    assert cost.price_book_version == PRICE_BOOK_VERSION
    assert cost.breakdown()["priced"] == "false"
    assert not model_known("claude-nonexistent-9", at=NOW)
    assert not model_known("gpt-4o", at=NOW)


def test_sonnet_5_5_cache_read_drops_from_0_20_to_0_10_on_2026_10_07():
    before = datetime(2026, 10, 6, 23, 59, 59, tzinfo=UTC)
    from_then = datetime(2026, 10, 7, 0, 0, tzinfo=UTC)
    u = usage(cr=1_000_000)
    assert usage_cost("claude-sonnet-5-5", u, at=before).cache_read_usd == D("0.20")
    assert usage_cost("claude-sonnet-5-5", u, at=from_then).cache_read_usd == D("0.10")


def test_effective_dates_compare_in_utc():
    # 2026-10-07 01:00 in Berlin (UTC+2 then) is still 2026-10-06 in UTC.
    at = datetime(2026, 10, 7, 1, 0, tzinfo=timezone(timedelta(hours=2)))
    assert usage_cost("claude-sonnet-5-5", usage(cr=1_000_000), at=at).cache_read_usd == D("0.20")


def test_a_model_is_unknown_before_its_first_effective_date():
    assert not model_known("claude-fable-5-2", at=datetime(2026, 11, 8, tzinfo=UTC))
    assert model_known("claude-fable-5-2", at=datetime(2026, 11, 9, tzinfo=UTC))
    early = usage_cost("claude-fable-5-2", usage(10), at=datetime(2026, 11, 1, tzinfo=UTC))
    assert not early.priced


def test_haiku_5_5_above_100k_total_input_bills_the_whole_request_at_the_higher_rates():
    above = usage_cost("claude-haiku-5-5", usage(60_000, cr=40_001, out=1000), at=NOW)
    # 60,000 x 0.50 + 40,001 x 0.05 + 1,000 x 2.50 (per million)
    assert parts(above)[:5] == (D("0.03"), D(0), D(0), D("0.00200005"), D("0.0025"))
    assert above.total_usd == D("0.03450005")
    at_limit = usage_cost("claude-haiku-5-5", usage(60_000, cr=40_000, out=1000), at=NOW)
    # exactly 100,000 stays on the base tier: 60,000 x 0.10 + 40,000 x 0.01 + 1,000 x 0.50
    assert at_limit.total_usd == D("0.006") + D("0.0004") + D("0.0005")


def test_haiku_5_5_tier_counts_cache_writes_in_total_input():
    cost = usage_cost("claude-haiku-5-5", usage(1, cw5=50_000, cw1h=50_000), at=NOW)
    # 100,001 total: 1 x 0.50 + 50,000 x 0.625 + 50,000 x 1.00
    assert cost.total_usd == D("0.0000005") + D("0.03125") + D("0.05")


def test_legacy_sonnet_4_5_above_200k_uses_the_long_context_rates():
    u = usage(150_000, cw5=30_000, cw1h=20_001, cr=1, out=2000)
    cost = usage_cost("claude-sonnet-4-5-20250929", u, at=NOW)
    # 150,000 x 6 + 30,000 x 7.50 + 20,001 x 12 + 1 x 0.60 + 2,000 x 22.50
    assert parts(cost)[:5] == (D("0.9"), D("0.225"), D("0.240012"), D("0.0000006"), D("0.045"))
    assert cost.total_usd == D("1.4100126")
    assert usage_cost("claude-sonnet-4-0", u, at=NOW).total_usd == D("1.4100126")


def test_sonnet_4_6_has_no_long_context_tier():
    u = usage(150_000, cw5=30_000, cw1h=20_001, cr=1, out=2000)
    # 150,000 x 3 + 30,000 x 3.75 + 20,001 x 6 + 1 x 0.30 + 2,000 x 15
    assert usage_cost("claude-sonnet-4-6", u, at=NOW).total_usd == D("0.7125063")


def test_batch_halves_every_token_category_including_cache():
    u = usage(1000, cw5=100, cw1h=10, cr=500, out=200)
    # (1000 x 5 + 100 x 6.25 + 10 x 10 + 500 x 0.50 + 200 x 25) x 0.5 per million
    expected = (D("0.0025"), D("0.0003125"), D("0.00005"), D("0.000125"), D("0.0025"))
    cost = usage_cost("claude-opus-4-5", u, at=NOW, batch=True)
    assert parts(cost)[:5] == expected
    assert cost.total_usd == D("0.0054875")
    tier = usage_cost("claude-opus-4-5", {**u, "service_tier": "batch"}, at=NOW)
    assert tier == cost


def test_batch_does_not_discount_the_web_search_fee():
    u = usage(1000, server_tool_use={"web_search_requests": 3, "web_fetch_requests": 5})
    cost = usage_cost("claude-haiku-4-5", u, at=NOW, batch=True)
    assert cost.input_usd == D("0.0005")
    assert cost.server_tools_usd == D("0.03")


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("claude-opus-4-6", D("0.03") + D("0.015")),  # 6x: 1000 x 30 + 100 x 150
        ("claude-opus-4-7", D("0.03") + D("0.015")),  # 6x
        ("claude-opus-4-8", D("0.01") + D("0.005")),  # 2x: 1000 x 10 + 100 x 50
        ("claude-opus-5", D("0.01") + D("0.005")),  # 2x
        ("claude-opus-5-5", D("0.008") + D("0.004")),  # 2x: 1000 x 8 + 100 x 40
        ("claude-opus-4-5", D("0.005") + D("0.0025")),  # no fast mode: standard
    ],
)
def test_fast_mode_multiplies_by_the_model_specific_factor(model, expected):
    assert usage_cost(model, usage(1000, out=100, speed="fast"), at=NOW).total_usd == expected


def test_fast_mode_applies_to_cache_rates_too():
    cost = usage_cost("claude-opus-4-6", usage(cr=1000, cw1h=1000, speed="fast"), at=NOW)
    assert cost.cache_read_usd == D("0.003")  # 1000 x 0.50 x 6
    assert cost.cache_write_1h_usd == D("0.06")  # 1000 x 10 x 6


def test_us_inference_costs_1_1x_on_4_6_and_later_only():
    u = usage(1000, out=100, inference_geo="us")
    # 1000 x 3 x 1.1 + 100 x 15 x 1.1
    assert usage_cost("claude-sonnet-4-6", u, at=NOW).total_usd == D("0.0033") + D("0.00165")
    # Haiku 4.5 is pre-4.6: no multiplier. 1000 x 1 + 100 x 5
    assert usage_cost("claude-haiku-4-5", u, at=NOW).total_usd == D("0.001") + D("0.0005")
    glob = usage(1000, out=100, inference_geo="global")
    assert usage_cost("claude-sonnet-4-6", glob, at=NOW).total_usd == D("0.0045")


def test_all_modifiers_stack_exactly():
    u = usage(3, cr=7, speed="fast", inference_geo="us", service_tier="batch")
    cost = usage_cost("claude-opus-4-6", u, at=NOW)
    # x 0.5 x 6 x 1.1 = x 3.3 : input 3 x 5 x 3.3 = 49.5; read 7 x 0.50 x 3.3 = 11.55
    assert cost.input_usd == D("0.0000495")
    assert cost.cache_read_usd == D("0.00001155")
    assert cost.total_usd == D("0.00006105")


def test_smallest_fraction_is_exact_at_twelve_places():
    # one 5m-write token on Haiku 5.5, batch + US: 0.125 x 0.5 x 1.1 = 0.06875 per million
    u = usage(cw5=1, inference_geo="us", service_tier="batch")
    assert usage_cost("claude-haiku-5-5", u, at=NOW).total_usd == D("0.00000006875")


def test_every_rate_times_every_modifier_is_exact_at_twelve_places():
    fast = {e.fast_multiplier for e in pricing.BOOK.entries} | {None}
    us = {e.us_multiplier for e in pricing.BOOK.entries} | {None}
    with localcontext() as ctx:
        ctx.prec = 80
        for entry in pricing.BOOK.entries:
            tiers = [entry.rates] + ([entry.long_prompt_rates] if entry.long_prompt_rates else [])
            for rates, f, g, batch in product(tiers, fast, us, (True, False)):
                mult = (f or 1) * (g or 1) * (D("0.5") if batch else 1)
                for rate in vars(rates).values():
                    exact = rate * mult / D(1_000_000)
                    assert exact == exact.quantize(D("1e-12")), (entry.family, rate, mult)


def test_null_and_missing_usage_fields_count_as_zero():
    u = {
        "input_tokens": None,
        "cache_creation_input_tokens": None,
        "cache_creation": None,
        "output_tokens": 10,
        "server_tool_use": None,
        "service_tier": None,
    }
    assert usage_cost("claude-haiku-4-5", u, at=NOW).total_usd == D("0.00005")
    assert usage_cost("claude-haiku-4-5", {}, at=NOW).total_usd == D(0)


def test_missing_split_bills_all_cache_writes_at_5m():
    u = {"input_tokens": 0, "cache_creation_input_tokens": 1000, "output_tokens": 0}
    cost = usage_cost("claude-sonnet-4-6", u, at=NOW)
    assert cost.cache_write_5m_usd == D("0.00375")
    assert cost.cache_write_1h_usd == D(0)


def test_cache_writes_beyond_the_split_bill_the_remainder_at_5m():
    u = usage(cw5=100, cw1h=200)
    u["cache_creation_input_tokens"] = 1300
    cost = usage_cost("claude-sonnet-4-6", u, at=NOW)
    # 100 + (1,300 - 300) = 1,100 tokens x 3.75 = 4,125 -> 0.004125; 200 x 6 = 1,200 -> 0.0012
    assert cost.cache_write_5m_usd == D("0.004125")
    assert cost.cache_write_1h_usd == D("0.0012")


def test_price_book_has_a_version_and_dated_entries():
    raw = json.loads((Path(pricing.__file__).with_name("pricebook.json")).read_text())
    assert raw["version"] == PRICE_BOOK_VERSION
    assert all("effective_from" in item for item in raw["models"])
    assert {item["family"] for item in raw["models"]} == set(TABLE)


# -- worst_case_cost -----------------------------------------------------------------------


def test_worst_case_charges_input_at_the_highest_input_side_rate():
    # Sonnet 4.6: max(3, 3.75, 6, 0.30) = 6 -> 1000 x 6 + 100 x 15
    assert worst_case_cost("claude-sonnet-4-6", input_tokens=1000, max_tokens=100, at=NOW) == D(
        "0.0075"
    )


def test_worst_case_uses_the_long_prompt_tier_when_input_can_cross_it():
    # 100,001 x 1.00 + 100 x 2.50
    assert worst_case_cost("claude-haiku-5-5", input_tokens=100_001, max_tokens=100, at=NOW) == D(
        "0.100251"
    )
    # 100,000 cannot cross: 100,000 x 0.20 + 100 x 0.50
    assert worst_case_cost("claude-haiku-5-5", input_tokens=100_000, max_tokens=100, at=NOW) == D(
        "0.02005"
    )


def test_worst_case_applies_batch_fast_and_us_when_requested():
    got = worst_case_cost(
        "claude-opus-4-6",
        input_tokens=1000,
        max_tokens=100,
        at=NOW,
        batch=True,
        speed="fast",
        inference_geo="us",
    )
    # (1000 x 10 + 100 x 25) x 0.5 x 6 x 1.1 = 12,500 x 3.3 = 41,250
    assert got == D("0.04125")


def test_worst_case_for_an_unknown_model_uses_the_most_expensive_rates():
    # highest input-side rate in the book: 30 (Opus 4/4.1/3 1h write); highest output: 75
    got = worst_case_cost("claude-unknown", input_tokens=1000, max_tokens=100, at=NOW)
    assert got == D("0.0375")
    fast_us = worst_case_cost(
        "claude-unknown",
        input_tokens=1000,
        max_tokens=100,
        at=NOW,
        speed="fast",
        inference_geo="us",
    )
    assert fast_us == D("0.0375") * 6 * D("1.1")


def test_worst_case_adds_the_web_search_fee():
    got = worst_case_cost(
        "claude-haiku-4-5", input_tokens=0, max_tokens=0, at=NOW, web_search_requests=5
    )
    assert got == D("0.05")


MODELS = [*sorted(TABLE), "claude-sonnet-4-5-20250929", "claude-unknown-1"]


@settings(max_examples=300, deadline=None)
@given(
    model=st.sampled_from(MODELS),
    inp=st.integers(0, 300_000),
    cw5=st.integers(0, 100_000),
    cw1h=st.integers(0, 100_000),
    cr=st.integers(0, 100_000),
    out=st.integers(0, 64_000),
    slack=st.integers(0, 1000),
    batch=st.booleans(),
    speed=st.sampled_from([None, "fast"]),
    geo=st.sampled_from([None, "us"]),
)
def test_worst_case_never_under_estimates_any_matching_usage(
    model, inp, cw5, cw1h, cr, out, slack, batch, speed, geo
):
    u = usage(inp, cw5, cw1h, cr, out, speed=speed, inference_geo=geo)
    actual = usage_cost(model, u, at=NOW, batch=batch)
    reserved = worst_case_cost(
        model,
        input_tokens=inp + cw5 + cw1h + cr + slack,
        max_tokens=out + slack,
        at=NOW,
        batch=batch,
        speed=speed,
        inference_geo=geo,
    )
    assert reserved >= actual.total_usd
