"""Store calendars and business time (sla domain, pure: no database, no clock).

A calendar is a store's weekly opening hours in its own time zone plus holidays (closed all
day). `counted(calendar, a, b)` is the open time between two instants and
`add_counted(calendar, a, amount)` the instant when `amount` of open time has passed after
`a`; `None` is the 24/7 calendar. Opening hours are wall-clock times, so a DST change makes
that day's open interval an hour longer or shorter in real time, which is what is counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_DAYS = 3 * 366  # add_counted gives up after this many days without enough open time
_ZERO = timedelta(0)

Window = tuple[time, time | None]  # open, close (None: midnight at the end of the day, "24:00")


class CalendarError(ValueError):
    """An invalid calendar; the message names the field."""


def _parse_time(value: str, field: str, *, allow_24: bool) -> time | None:
    if allow_24 and value == "24:00":
        return None
    try:
        hours, minutes = value.split(":")
        if len(hours) != 2 or len(minutes) != 2:
            raise ValueError
        return time(int(hours), int(minutes))
    except ValueError:
        raise CalendarError(f"{field}: {value!r} is not a time like 07:30"
                            + (" (or 24:00 for midnight)" if allow_24 else "")) from None


@dataclass(frozen=True, slots=True)
class Calendar:
    timezone: ZoneInfo
    week: tuple[tuple[Window, ...], ...]  # 7 days, Monday first, windows sorted and disjoint
    holidays: frozenset[date]

    @classmethod
    def parse(cls, timezone: str, hours: Mapping[str, Sequence[Sequence[str]]], holidays: Iterable[str]) -> Calendar:
        """Validate the API/database form; CalendarError names the bad field."""
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise CalendarError(f"timezone: {timezone!r} is not an IANA time zone such as Europe/Berlin") from None
        unknown = sorted(set(hours) - set(WEEKDAYS))
        if unknown:
            raise CalendarError(f"hours: unknown day {unknown[0]!r}; use {', '.join(WEEKDAYS)}")
        week: list[tuple[Window, ...]] = []
        for day in WEEKDAYS:
            windows: list[Window] = []
            for i, window in enumerate(hours.get(day, ())):
                field = f"hours.{day}[{i}]"
                if len(window) != 2:
                    raise CalendarError(f"{field}: give [open, close], e.g. [\"07:00\", \"22:00\"]")
                opens = _parse_time(window[0], field, allow_24=False)
                closes = _parse_time(window[1], field, allow_24=True)
                assert opens is not None
                if closes is not None and closes <= opens:
                    raise CalendarError(f"{field}: closes at {window[1]}, not after it opens at {window[0]} "
                                        "(split a night across two days: [\"22:00\", \"24:00\"] and [\"00:00\", ...])")
                windows.append((opens, closes))
            windows.sort(key=lambda w: w[0])
            for (_o1, c1), (o2, _c2) in zip(windows, windows[1:], strict=False):
                if c1 is None or c1 > o2:
                    raise CalendarError(f"hours.{day}: opening windows overlap")
            week.append(tuple(windows))
        if not any(week):
            raise CalendarError("hours: the store must be open at least once a week (omit the calendar for 24/7)")
        days: set[date] = set()
        for i, value in enumerate(holidays):
            try:
                days.add(date.fromisoformat(value))
            except (TypeError, ValueError):
                raise CalendarError(f"holidays[{i}]: {value!r} is not a date like 2026-12-25") from None
        return cls(zone, tuple(week), frozenset(days))

    def open_intervals(self, start: datetime, end: datetime | None = None) -> Iterator[tuple[datetime, datetime]]:
        """The open intervals (UTC) that end after `start`, in order, up to `end` (or MAX_DAYS)."""
        day = start.astimezone(self.timezone).date() - timedelta(days=1)
        last = end.astimezone(self.timezone).date() if end is not None else day + timedelta(days=MAX_DAYS)
        while day <= last:
            if day not in self.holidays:
                for opens, closes in self.week[day.weekday()]:
                    begin = datetime.combine(day, opens, tzinfo=self.timezone).astimezone(UTC)
                    finish = (datetime.combine(day, closes, tzinfo=self.timezone) if closes is not None
                              else datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.timezone))
                    finish = finish.astimezone(UTC)
                    if finish > start and finish > begin:
                        yield begin, finish
            day += timedelta(days=1)


def counted(calendar: Calendar | None, start: datetime, end: datetime) -> timedelta:
    """Open time between two instants (all of it for the 24/7 calendar); zero if end <= start."""
    if end <= start:
        return _ZERO
    if calendar is None:
        return end - start
    total = _ZERO
    for begin, finish in calendar.open_intervals(start, end):
        overlap = min(finish, end) - max(begin, start)
        if overlap > _ZERO:
            total += overlap
    return total


def add_counted(calendar: Calendar | None, start: datetime, amount: timedelta) -> datetime:
    """The instant at which `amount` of open time has passed since `start`."""
    if calendar is None:
        return start + amount
    left = amount
    for begin, finish in calendar.open_intervals(start):
        begin = max(begin, start)
        if finish - begin >= left:
            return begin + left
        left -= finish - begin
    raise CalendarError(f"the calendar has less than {amount} of open time in the {MAX_DAYS} days after {start}")
