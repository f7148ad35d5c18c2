"""SLA figures from the status history: business hours, nights, weekends, holidays, DST, pauses,
priority changes and offline actions judged by their own time; the timer plan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from central.sla.calendar import Calendar, CalendarError, add_counted, counted
from central.sla.clock import Change, Stage, Targets, compute, effective_steps
from central.sla.models import SlaTarget
from central.sla.plan import ACCEPT_KIND, BREACH_KIND, ESCALATION_KIND, WARNING_KIND, Assignment, plan
from central.tickets.models import Source
from protocols.mqtt.messages import TicketStatusValue as S

BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS_7_22 = {d: [["07:00", "22:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}
SHOP = Calendar.parse("Europe/Berlin", WEEKDAYS_7_22 | {"sat": [["08:00", "20:00"]]}, ["2026-12-25"])
ALWAYS = Calendar.parse("Europe/Berlin", {d: [["00:00", "24:00"]] for d in
                                          ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}, [])
T24 = Targets(response_min=30, arrival_min=240, resolution_min=480, business_hours=False)
TBH = Targets(response_min=60, arrival_min=480, resolution_min=1440, business_hours=True)


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN).astimezone(UTC)  # type: ignore[misc]


def h(hours: float) -> timedelta:
    return timedelta(hours=hours)


# --- calendar -----------------------------------------------------------------------------------
def test_open_time_across_a_night() -> None:  # Mon 2026-01-05 21:30 -> Tue 07:30: 30 min + 30 min
    assert counted(SHOP, local(2026, 1, 5, 21, 30), local(2026, 1, 6, 7, 30)) == h(1)
    assert add_counted(SHOP, local(2026, 1, 5, 21, 30), h(1)) == local(2026, 1, 6, 7, 30)


def test_open_time_across_a_weekend_and_sunday_closed() -> None:  # Sat 08-20, Sunday closed
    assert add_counted(SHOP, local(2026, 1, 9, 21, 45), h(1)) == local(2026, 1, 10, 8, 45)
    assert add_counted(SHOP, local(2026, 1, 10, 19, 30), h(1)) == local(2026, 1, 12, 7, 30)
    assert counted(SHOP, local(2026, 1, 10, 20, 0), local(2026, 1, 12, 7, 0)) == timedelta(0)


def test_a_holiday_is_closed_all_day() -> None:  # Fri 2026-12-25 is a holiday
    assert add_counted(SHOP, local(2026, 12, 24, 21, 0), h(2)) == local(2026, 12, 26, 9, 0)


def test_closed_start_begins_at_the_next_opening() -> None:
    assert add_counted(SHOP, local(2026, 1, 6, 3, 0), h(0.5)) == local(2026, 1, 6, 7, 30)


@pytest.mark.parametrize(("day", "hours"), [(29, 23), (28, 24), (30, 24)])  # 2026-03-29: clocks go forward
def test_spring_forward_day_has_23_open_hours(day: int, hours: int) -> None:
    start = datetime(2026, 3, day, tzinfo=BERLIN)
    assert counted(ALWAYS, start.astimezone(UTC), (start + timedelta(days=1)).replace(tzinfo=BERLIN)
                   .astimezone(UTC)) == h(hours)


def test_fall_back_day_has_25_open_hours_and_opening_hours_stay_local() -> None:  # 2026-10-25
    start, end = datetime(2026, 10, 25, tzinfo=BERLIN), datetime(2026, 10, 26, tzinfo=BERLIN)
    assert counted(ALWAYS, start.astimezone(UTC), end.astimezone(UTC)) == h(25)
    # a weekday window is 07:00-22:00 local before and after the change: 06:00 UTC then 07:00 UTC
    assert add_counted(SHOP, local(2026, 10, 23, 21, 0), h(2)) == datetime(2026, 10, 24, 7, 0, tzinfo=UTC)
    assert add_counted(SHOP, local(2026, 10, 24, 19, 30), h(1)) == datetime(2026, 10, 26, 6, 30, tzinfo=UTC)


def test_none_is_24_7() -> None:
    assert counted(None, local(2026, 1, 10, 20), local(2026, 1, 11, 20)) == h(24)
    assert add_counted(None, local(2026, 1, 10, 20), h(3)) == local(2026, 1, 10, 23)


@pytest.mark.parametrize(("timezone", "hours", "holidays", "field"), [
    ("Mars/Olympus", {"mon": [["07:00", "22:00"]]}, [], "timezone"),
    ("UTC", {"monday": [["07:00", "22:00"]]}, [], "hours: unknown day 'monday'"),
    ("UTC", {"mon": [["7am", "22:00"]]}, [], "hours.mon[0]"),
    ("UTC", {"mon": [["22:00", "07:00"]]}, [], "hours.mon[0]: closes at 07:00"),
    ("UTC", {"mon": [["07:00", "12:00"], ["11:00", "13:00"]]}, [], "hours.mon: opening windows overlap"),
    ("UTC", {"mon": [["07:00"]]}, [], "hours.mon[0]: give [open, close]"),
    ("UTC", {}, [], "hours: the store must be open"),
    ("UTC", {"mon": [["07:00", "22:00"]]}, ["25.12.2026"], "holidays[0]"),
])  # fmt: skip
def test_bad_calendars_name_the_field(timezone: str, hours: dict[str, list[list[str]]], holidays: list[str],
                                      field: str) -> None:
    with pytest.raises(CalendarError, match=field.replace("[", r"\[").replace("]", r"\]")):
        Calendar.parse(timezone, hours, holidays)


# --- figures ------------------------------------------------------------------------------------
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)  # Monday 09:00 in Berlin


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_24_7_targets_met_and_running() -> None:
    changes = [Change(S.ASSIGNED, at(0)), Change(S.ACCEPTED, at(10)), Change(S.EN_ROUTE, at(12))]
    figures = compute(start=T0, changes=changes, targets=T24, calendar=SHOP, now=at(100))
    response, arrival = figures.of(SlaTarget.RESPONSE), figures.of(SlaTarget.ARRIVAL)
    assert response.met_at == at(10) and response.elapsed == timedelta(minutes=10) and not response.breached
    assert response.due_at == at(30) and response.stage_due[Stage.WARN50] == at(15)
    assert arrival.met_at is None and arrival.elapsed == timedelta(minutes=100)
    assert arrival.due_at == at(240) and arrival.remaining == timedelta(minutes=140) and arrival.running
    assert arrival.stage_due[Stage.WARN75] == at(180)


def test_breach_is_reached_at_exactly_the_target() -> None:
    figures = compute(start=T0, changes=[], targets=T24, calendar=None, now=at(30))
    assert figures.of(SlaTarget.RESPONSE).breached and figures.of(SlaTarget.RESPONSE).remaining == timedelta(0)
    late = compute(start=T0, changes=[Change(S.ACCEPTED, at(31))], targets=T24, calendar=None, now=at(40))
    assert late.of(SlaTarget.RESPONSE).breached and late.of(SlaTarget.RESPONSE).met_at == at(31)
    on_time = compute(start=T0, changes=[Change(S.ACCEPTED, at(30))], targets=T24, calendar=None, now=at(40))
    assert not on_time.of(SlaTarget.RESPONSE).breached


def test_business_hours_policy_counts_only_open_time() -> None:
    start = local(2026, 1, 9, 21, 30)  # Friday, 30 min before closing
    figures = compute(start=start, changes=[], targets=TBH, calendar=SHOP, now=local(2026, 1, 10, 8, 10))
    response = figures.of(SlaTarget.RESPONSE)
    assert response.elapsed == timedelta(minutes=40)
    assert response.due_at == local(2026, 1, 10, 8, 30)
    assert response.stage_due[Stage.WARN50] == local(2026, 1, 9, 22, 0)
    # the same policy with no calendar (a store without one) runs 24/7
    assert compute(start=start, changes=[], targets=TBH, calendar=None,
                   now=start).of(SlaTarget.RESPONSE).due_at == start + h(1)


def test_pauses_are_not_counted_and_move_the_deadline() -> None:
    changes = [Change(S.ACCEPTED, at(5)), Change(S.EN_ROUTE, at(6)), Change(S.ON_SITE, at(60)),
               Change(S.AWAITING_PARTS, at(120)), Change(S.ON_SITE, at(1560)), Change(S.ON_HOLD, at(1600)),
               Change(S.ON_SITE, at(1700))]
    figures = compute(start=T0, changes=changes, targets=T24, calendar=None, now=at(1720))
    resolution = figures.of(SlaTarget.RESOLUTION)
    assert resolution.elapsed == timedelta(minutes=120 + 40 + 20)
    assert resolution.due_at == at(1700 + 480 - 160) and not resolution.breached
    paused = compute(start=T0, changes=changes[:4], targets=T24, calendar=None, now=at(1000))
    assert paused.paused and paused.of(SlaTarget.RESOLUTION).paused
    assert paused.of(SlaTarget.RESOLUTION).due_at is None  # unknown until resumed
    assert paused.of(SlaTarget.RESOLUTION).elapsed == timedelta(minutes=120)
    assert paused.of(SlaTarget.RESPONSE).met_at == at(5) and not paused.of(SlaTarget.RESPONSE).paused


def test_a_raised_priority_keeps_the_original_start() -> None:
    p3 = Targets(response_min=60, arrival_min=480, resolution_min=1440, business_hours=False)
    before = compute(start=T0, changes=[Change(S.ASSIGNED, at(1))], targets=p3, calendar=None, now=at(40))
    after = compute(start=T0, changes=[Change(S.ASSIGNED, at(1))], targets=T24, calendar=None, now=at(40))
    assert before.of(SlaTarget.RESPONSE).due_at == at(60) and not before.of(SlaTarget.RESPONSE).breached
    assert after.of(SlaTarget.RESPONSE).due_at == at(30) and after.of(SlaTarget.RESPONSE).breached


def test_an_offline_handheld_action_is_judged_by_when_it_happened() -> None:
    synced = [Change(S.ASSIGNED, at(1)), Change(S.ACCEPTED, at(90), client_at=at(20), source=Source.HANDHELD)]
    response = compute(start=T0, changes=synced, targets=T24, calendar=None, now=at(90)).of(SlaTarget.RESPONSE)
    assert response.met_at == at(20) and not response.breached
    # the same client time from a non-handheld source is ignored
    api = [Change(S.ASSIGNED, at(1)), Change(S.ACCEPTED, at(90), client_at=at(20), source=Source.API)]
    assert compute(start=T0, changes=api, targets=T24, calendar=None,
                   now=at(90)).of(SlaTarget.RESPONSE).met_at == at(90)


@pytest.mark.parametrize("client_minute", [95, 0.5])  # after the server received it; before the previous step
def test_implausible_client_times_fall_back_to_server_time(client_minute: float) -> None:
    changes = [Change(S.ASSIGNED, at(1)), Change(S.ACCEPTED, at(90), client_at=at(client_minute),
                                                 source=Source.HANDHELD)]
    steps = effective_steps(changes, T0)
    assert steps[1].at == at(90) and not steps[1].from_client


def test_resolution_and_closing_stop_the_clocks() -> None:
    changes = [Change(S.ACCEPTED, at(5)), Change(S.EN_ROUTE, at(6)), Change(S.ON_SITE, at(300)),
               Change(S.RESOLVED, at(400)), Change(S.CLOSED, at(900))]
    figures = compute(start=T0, changes=changes, targets=T24, calendar=None, now=at(2000))
    assert figures.of(SlaTarget.RESOLUTION).met_at == at(400) and not figures.of(SlaTarget.RESOLUTION).breached
    assert figures.of(SlaTarget.ARRIVAL).breached and figures.of(SlaTarget.ARRIVAL).met_at == at(300)
    cancelled = compute(start=T0, changes=[Change(S.CANCELLED, at(10))], targets=T24, calendar=None, now=at(600))
    response = cancelled.of(SlaTarget.RESPONSE)
    assert response.stopped and not response.running and response.elapsed == timedelta(minutes=10)


# --- timer plan ---------------------------------------------------------------------------------
def _plan(figures, **kwargs):  # type: ignore[no-untyped-def]
    options = dict(ticket_id=7, warned=set(), escalated={}, escalation_interval=h(0.5), assignment=None,
                   accept_window=timedelta(minutes=15), is_open=True)
    options.update(kwargs)
    return {t.key: t for t in plan(figures=figures, **options)}


def test_plan_warns_at_50_and_75_and_breaches_each_open_target() -> None:
    figures = compute(start=T0, changes=[Change(S.ASSIGNED, at(0)), Change(S.ACCEPTED, at(10))], targets=T24,
                      calendar=None, now=at(11))
    timers = _plan(figures, warned={("arrival", "warn50")})
    assert set(timers) == {"sla:7:arrival:warn75", "sla:7:arrival:breach", "sla:7:resolution:warn50",
                           "sla:7:resolution:warn75", "sla:7:resolution:breach"}
    assert timers["sla:7:arrival:breach"].due_at == at(240) and timers["sla:7:arrival:breach"].kind == BREACH_KIND
    warn50 = timers["sla:7:resolution:warn50"]
    assert warn50.due_at == at(240) and warn50.kind == WARNING_KIND
    assert _plan(figures, is_open=False) == {}


def test_plan_escalates_level_by_level_then_stops() -> None:
    figures = compute(start=T0, changes=[Change(S.ASSIGNED, at(0))], targets=T24, calendar=None, now=at(45))
    assert "sla:7:response:breach" in _plan(figures) and "sla:7:response:warn50" not in _plan(figures)
    after_1 = _plan(figures, escalated={"response": (1, at(30))})
    assert after_1["sla:7:response:esc2"].due_at == at(60) and after_1["sla:7:response:esc2"].kind == ESCALATION_KIND
    assert after_1["sla:7:response:esc2"].data == {"target": "response", "level": 2}
    assert "sla:7:response:breach" not in after_1
    assert not any(k.startswith("sla:7:response") for k in _plan(figures, escalated={"response": (3, at(90))}))


def test_plan_pauses_drop_the_targets_timers_and_the_accept_window_follows_the_assignment() -> None:
    changes = [Change(S.ASSIGNED, at(0)), Change(S.ON_HOLD, at(5))]
    paused = compute(start=T0, changes=changes, targets=T24, calendar=None, now=at(6))
    assert _plan(paused) == {}
    waiting = compute(start=T0, changes=changes[:1], targets=T24, calendar=None, now=at(1))
    timers = _plan(waiting, assignment=Assignment(technician_id=3, event_id=11, at=at(0)))
    assert timers["sla:7:accept"].kind == ACCEPT_KIND and timers["sla:7:accept"].due_at == at(15)
    assert timers["sla:7:accept"].data == {"technician_id": 3, "event_id": 11}
