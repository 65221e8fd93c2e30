"""Calendar periods in the tenant's time zone (pure functions, explicit datetimes) and the
worst-case estimator."""

import base64
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from proxy.budgets.estimator import (
    IMAGE_TOKENS,
    PDF_PAGE_TOKENS,
    TOOL_USE_TOKENS,
    input_token_bound,
    message_worst_case,
)
from proxy.budgets.periods import period_window
from proxy.pricing import usage_cost


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0):
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_a_berlin_day_rolls_over_at_local_midnight():
    before = period_window("day", utc(2026, 11, 26, 22, 59, 59), "Europe/Berlin")
    after = period_window("day", utc(2026, 11, 26, 23, 0, 0), "Europe/Berlin")

    assert before.start == utc(2026, 11, 25, 23)
    assert before.end == utc(2026, 11, 26, 23)
    assert after.start == before.end


def test_the_berlin_day_of_the_spring_dst_change_has_23_hours():
    window = period_window("day", utc(2026, 3, 29, 12), "Europe/Berlin")

    assert window.start == utc(2026, 3, 28, 23)  # midnight CET (+01:00)
    assert window.end == utc(2026, 3, 29, 22)  # midnight CEST (+02:00)
    assert window.end - window.start == timedelta(hours=23)


def test_the_berlin_day_of_the_autumn_dst_change_has_25_hours():
    window = period_window("day", utc(2026, 10, 25, 12), "Europe/Berlin")

    assert window.start == utc(2026, 10, 24, 22)
    assert window.end == utc(2026, 10, 25, 23)
    assert window.end - window.start == timedelta(hours=25)


def test_new_york_days_around_both_dst_changes_start_at_local_midnight():
    spring = period_window("day", utc(2026, 3, 8, 12), "America/New_York")
    autumn = period_window("day", utc(2026, 11, 1, 12), "America/New_York")
    late_evening = period_window("day", utc(2026, 11, 2, 4, 59), "America/New_York")

    assert (spring.start, spring.end) == (utc(2026, 3, 8, 5), utc(2026, 3, 9, 4))
    assert (autumn.start, autumn.end) == (utc(2026, 11, 1, 4), utc(2026, 11, 2, 5))
    assert late_evening.start == autumn.start  # 23:59 EST on Nov 1 is still that day


def test_a_month_is_a_calendar_month_in_the_tenant_zone():
    new_year_eve = period_window("month", utc(2026, 12, 31, 22, 59), "Europe/Berlin")
    new_year = period_window("month", utc(2026, 12, 31, 23, 0), "Europe/Berlin")
    february = period_window("month", utc(2028, 2, 15), "UTC")
    march_ny = period_window("month", utc(2026, 3, 20), "America/New_York")

    assert new_year_eve.start == utc(2026, 11, 30, 23)
    assert new_year_eve.end == new_year.start == utc(2026, 12, 31, 23)
    assert new_year.end == utc(2027, 1, 31, 23)
    assert february.end - february.start == timedelta(days=29)  # leap year, not "30 days"
    # March in New York loses an hour to DST: 31 days minus one hour.
    assert march_ny.end - march_ny.start == timedelta(days=31, hours=-1)


def test_weeks_start_on_monday_unless_the_tenant_chose_sunday():
    sunday_noon = utc(2026, 11, 29, 12)

    monday_week = period_window("week", sunday_noon, "UTC")
    sunday_week = period_window("week", sunday_noon, "UTC", "sunday")

    assert monday_week.start == utc(2026, 11, 23)
    assert monday_week.end == utc(2026, 11, 30)
    assert sunday_week.start == utc(2026, 11, 29)
    assert sunday_week.end == utc(2026, 12, 6)


def test_a_berlin_week_spanning_the_dst_change_has_167_hours():
    window = period_window("week", utc(2026, 3, 27, 12), "Europe/Berlin")

    assert window.start == utc(2026, 3, 22, 23)
    assert window.end - window.start == timedelta(hours=167)


def test_a_day_whose_midnight_is_skipped_starts_when_the_clocks_jump():
    # Santiago moves clocks from 00:00 to 01:00 on 2026-09-06: that day starts at 01:00 -03.
    window = period_window("day", utc(2026, 9, 6, 12), "America/Santiago")

    assert window.start == utc(2026, 9, 6, 4)
    assert window.end == utc(2026, 9, 7, 3)


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="aware"):
        period_window("day", datetime(2026, 1, 1), "UTC")


def _body(**extra: object) -> dict:
    return {
        "model": "claude-sonnet-4-6",
        "max_tokens": 700,
        "messages": [{"role": "user", "content": "Résumé: naïve café ✓ " * 40}],
        **extra,
    }


def test_the_worst_case_is_never_below_the_cost_of_what_the_request_can_use():
    body = _body()
    raw = json.dumps(body, ensure_ascii=False).encode()
    bound = input_token_bound(body, raw)
    # Even if every byte were a token, all of it a 1h cache write, and the answer used max_tokens:
    real = usage_cost(
        "claude-sonnet-4-6",
        {"cache_creation": {"ephemeral_1h_input_tokens": len(raw)}, "output_tokens": 700},
        at=utc(2026, 11, 27),
    ).total_usd

    assert bound >= len(raw)
    assert message_worst_case(body, raw, at=utc(2026, 11, 27)) >= real


def test_tools_images_and_pdfs_add_what_their_bytes_do_not_show():
    pdf = (
        b"%PDF-1.4\n1 0 obj << /Type /Pages >>\n"
        b"2 0 obj << /Type /Page >>\n3 0 obj << /Type /Page >>"
    )
    body = _body(tools=[{"name": "lookup", "input_schema": {"type": "object"}}])
    body["messages"][0]["content"] = [
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
        {
            "type": "document",
            "source": {
                "type": "base64",
                "media_type": "application/pdf",
                "data": base64.b64encode(pdf).decode(),
            },
        },
    ]
    raw = json.dumps(body).encode()

    assert input_token_bound(body, raw) == len(raw) + TOOL_USE_TOKENS + IMAGE_TOKENS + (
        2 * PDF_PAGE_TOKENS
    )


def test_an_unknown_model_is_reserved_at_the_highest_rates():
    body = _body(model="claude-from-the-future")
    raw = json.dumps(body).encode()

    assert message_worst_case(body, raw, at=utc(2026, 11, 27)) > message_worst_case(
        _body(), json.dumps(_body()).encode(), at=utc(2026, 11, 27)
    )
    assert message_worst_case(body, raw, at=utc(2026, 11, 27)) > Decimal(0)


def test_budgets_apply_by_tenant_project_cost_center_key_and_key_owner():
    from types import SimpleNamespace

    from proxy.budgets.rules import BudgetRule

    key = SimpleNamespace(id="k-1", project_id=7, cost_center_id=3, owner_id=42)
    other = SimpleNamespace(id="k-2", project_id=8, cost_center_id=4, owner_id=None)

    def rule(scope: str, target: str | None) -> BudgetRule:
        return BudgetRule(1, scope, scope, target, Decimal(1), "day", (100,), True)

    rules = [
        rule("tenant", None),
        rule("project", "7"),
        rule("cost_center", "3"),
        rule("key", "k-1"),
        rule("user", "42"),
    ]

    assert all(r.applies_to(key) for r in rules)
    assert [r.scope for r in rules if r.applies_to(other)] == ["tenant"]
