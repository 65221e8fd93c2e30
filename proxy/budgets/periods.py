"""Calendar periods (day, week, month) in a tenant's IANA time zone, as UTC instants.

A period starts at local midnight of its first day and ends at local midnight of the next
period's first day, so a day is 23 or 25 hours long across a DST change and a month is a
calendar month, never "30 days". Pure functions of explicit datetimes.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

PERIODS = ("day", "week", "month")


@dataclass(frozen=True)
class PeriodWindow:
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive

    @property
    def key(self) -> int:
        """The period's identity in counter keys: its start as a Unix timestamp."""
        return int(self.start.timestamp())

    def elapsed_fraction(self, at: datetime) -> float:
        total = (self.end - self.start).total_seconds()
        done = (min(max(at, self.start), self.end) - self.start).total_seconds()
        return done / total if total else 1.0


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The first instant of `day` in `tz`, in UTC (also where midnight falls in a DST gap)."""
    local = datetime(day.year, day.month, day.day, tzinfo=tz)  # fold=0: first occurrence
    instant = local.astimezone(UTC)
    if instant.astimezone(tz).date() == day and instant.astimezone(tz).replace(
        tzinfo=None
    ) == local.replace(tzinfo=None):
        return instant
    # Midnight does not exist that day (clocks jumped over it): the day starts at the jump.
    probe = datetime(day.year, day.month, day.day, tzinfo=tz).replace(fold=1).astimezone(UTC)
    probe = probe.replace(second=0, microsecond=0)
    while probe.astimezone(tz).date() < day:
        probe += timedelta(minutes=1)
    while (probe - timedelta(minutes=1)).astimezone(tz).date() == day:
        probe -= timedelta(minutes=1)
    return probe


def _first_day(period: str, today: date, week_starts_on: str) -> date:
    if period == "day":
        return today
    if period == "week":
        first_weekday = 6 if week_starts_on == "sunday" else 0  # date.weekday(): Monday is 0
        return today - timedelta(days=(today.weekday() - first_weekday) % 7)
    if period == "month":
        return today.replace(day=1)
    raise ValueError(f"unknown period {period!r}")


def _next_first_day(period: str, first: date) -> date:
    if period == "day":
        return first + timedelta(days=1)
    if period == "week":
        return first + timedelta(days=7)
    return (first.replace(day=28) + timedelta(days=4)).replace(day=1)


def period_window(
    period: str, at: datetime, time_zone: str, week_starts_on: str = "monday"
) -> PeriodWindow:
    """The calendar period containing `at` (aware) in `time_zone`."""
    if at.tzinfo is None:
        raise ValueError("`at` must be timezone-aware")
    tz = ZoneInfo(time_zone)
    first = _first_day(period, at.astimezone(tz).date(), week_starts_on)
    return PeriodWindow(
        start=local_midnight(first, tz),
        end=local_midnight(_next_first_day(period, first), tz),
    )


def minute_window(at: datetime) -> tuple[int, int]:
    """(the minute's Unix start, seconds until the next minute, at least 1) for rate limits."""
    ts = at.timestamp()
    start = int(ts // 60 * 60)
    return start, max(1, int(start + 60 - ts + 0.999))
