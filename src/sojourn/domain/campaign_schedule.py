"""When a campaign runs: its run times, missed runs, local-time slices and treatment cohorts, as pure functions.

Policies (documented here and in the README):

- **Wall clock.** A schedule's runs keep the wall-clock time of ``StartTime`` as read in the schedule's
  ``Timezone`` (an IANA name or ``UTC±hh[:mm]``; UTC when unset). DAILY 09:00 America/New_York stays at 09:00
  local across the March and November changes; HOURLY runs are one elapsed hour apart.
- **DST gap/overlap.** A run whose wall time does not exist (02:30 on the spring-forward night) is shifted
  forward by the gap (03:30); a repeated wall time is its first occurrence.
- **MONTHLY** runs on the start's day of the month; in a month without that day (31st in April, 29-31st in
  February) on the month's last day. The day never drifts: each run is computed from the start.
- **EndTime** is inclusive: a run exactly at EndTime happens.
- **Missed runs** (the worker was down when runs fell due): the most recent due run runs once, at once, if it
  is less than one period late (ONCE: always); every older due run is skipped and counted.
- **IsLocalTime**: each endpoint gets the run at the run's wall time (as read in the schedule's zone) on its
  own clock (``Demographic.Timezone``). Endpoints without a (valid) zone use the schedule's zone.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from sojourn.domain.local_time import utc_to_wall, wall_to_utc, zone_named

RECURRING = ("HOURLY", "DAILY", "WEEKLY", "MONTHLY")
EVENT_FREQUENCIES = ("EVENT", "IN_APP_EVENT")
FREQUENCIES = ("ONCE", *RECURRING, *EVENT_FREQUENCIES)
COHORTS = 100
#: The shortest time between two runs of each recurring frequency.
RUN_PERIOD = {
    "HOURLY": timedelta(hours=1),
    "DAILY": timedelta(days=1),
    "WEEKLY": timedelta(days=7),
    "MONTHLY": timedelta(days=28),
}


@dataclass(frozen=True)
class ScheduleRule:
    """A campaign schedule, resolved.

    Attributes:
        frequency: ONCE, HOURLY, DAILY, WEEKLY, MONTHLY, EVENT or IN_APP_EVENT.
        start: The first run (aware); for ``IMMEDIATE`` the moment the campaign was written.
        end: The last instant a run may happen (aware, inclusive), or None.
        zone: The schedule's zone (its wall clock fixes the run times).
    """

    frequency: str
    start: datetime
    end: datetime | None
    zone: tzinfo


@dataclass(frozen=True)
class Run:
    """One run of a schedule: its number (0 for the first run) and its instant."""

    no: int
    at: datetime


@dataclass(frozen=True)
class DueRun:
    """What to do now: run ``run`` (None: nothing due), after skipping ``missed`` older due runs."""

    run: Run | None
    missed: int


@dataclass(frozen=True)
class LocalSlice:
    """Part of a local-time run: the endpoints whose zone is one of ``zones`` get it at ``at``.

    ``zones`` holds ``Demographic.Timezone`` values exactly as stored; ``""`` stands for endpoints without
    one (and unknown names are listed as they are), which use the schedule's zone.
    """

    at: datetime
    zones: tuple[str, ...]


def add_months(wall: datetime, months: int) -> datetime:
    """``wall`` moved by ``months`` calendar months, on its day or the month's last day when it has none."""
    year, month0 = divmod(wall.month - 1 + months, 12)
    year += wall.year
    last = calendar.monthrange(year, month0 + 1)[1]
    return wall.replace(year=year, month=month0 + 1, day=min(wall.day, last))


def run_at(rule: ScheduleRule, no: int) -> datetime:
    """The instant of run number ``no`` (0 is the start), ignoring the end time."""
    if rule.frequency == "HOURLY":
        # In UTC: aware arithmetic on a zone-aware datetime would add wall-clock hours.
        return rule.start.astimezone(UTC) + timedelta(hours=no)
    wall = utc_to_wall(rule.start, rule.zone)
    if rule.frequency == "DAILY":
        wall += timedelta(days=no)
    elif rule.frequency == "WEEKLY":
        wall += timedelta(days=7 * no)
    elif rule.frequency == "MONTHLY":
        wall = add_months(wall, no)
    elif no != 0:
        raise ValueError(f"a {rule.frequency} schedule has a single run")
    return wall_to_utc(wall, rule.zone)


def _within(rule: ScheduleRule, at: datetime) -> bool:
    return rule.end is None or at <= rule.end


def run_times(rule: ScheduleRule, *, after: datetime | None = None) -> Iterator[Run]:
    """The schedule's runs in order (strictly after ``after`` when given), up to the end time.

    EVENT schedules have no timed runs. A recurring schedule without an end time yields forever: take
    what you need.
    """
    if rule.frequency in EVENT_FREQUENCIES:
        return
    if rule.frequency == "ONCE":
        if (after is None or rule.start > after) and _within(rule, rule.start):
            yield Run(0, rule.start)
        return
    no = 0
    if after is not None and after > rule.start:
        # Jump close to ``after`` (periods are underestimated), then step.
        no = max(0, int((after - rule.start) / RUN_PERIOD[rule.frequency]) - 2)
    while True:
        at = run_at(rule, no)
        if not _within(rule, at):
            return
        if after is None or at > after:
            yield Run(no, at)
        no += 1


def next_run(rule: ScheduleRule, after: datetime | None) -> Run | None:
    """The first run strictly after ``after`` (the first run at all when None), or None when none is left."""
    return next(run_times(rule, after=after), None)


def due_run(rule: ScheduleRule, last_done: datetime | None, now: datetime) -> DueRun:
    """Which run to do at ``now``, given that every run up to ``last_done`` was handled (missed-run policy).

    The most recent run due by ``now`` (and after ``last_done``) runs if it is less than one period late
    (ONCE: however late); older due runs are skipped. See the module docstring.
    """
    due: list[Run] = []
    for run in run_times(rule, after=last_done):
        if run.at > now:
            break
        due.append(run)
    if not due:
        return DueRun(None, 0)
    latest = due[-1]
    if rule.frequency != "ONCE" and now - latest.at >= _period_after(rule, latest):
        return DueRun(None, len(due))
    return DueRun(latest, len(due) - 1)


def _period_after(rule: ScheduleRule, run: Run) -> timedelta:
    return run_at(rule, run.no + 1) - run.at


def local_slices(run: datetime, rule: ScheduleRule, zone_names: Iterable[str | None]) -> list[LocalSlice]:
    """The instants at which a local-time run reaches each zone, earliest first.

    Args:
        run: The run's instant (its wall time in the schedule's zone is the local send time everywhere).
        rule: The schedule.
        zone_names: The distinct ``Demographic.Timezone`` values of the audience (None/"" for none).

    Returns:
        One slice per distinct instant; endpoints with no or an unknown zone are in the schedule zone's slice.
    """
    wall = utc_to_wall(run, rule.zone)
    by_instant: dict[datetime, list[str]] = {wall_to_utc(wall, rule.zone): [""]}
    for name in sorted({n or "" for n in zone_names}):
        if name == "":
            continue
        zone = zone_named(name)
        at = wall_to_utc(wall, zone if zone is not None else rule.zone)
        by_instant.setdefault(at, []).append(name)
    return [LocalSlice(at, tuple(sorted(names))) for at, names in sorted(by_instant.items())]


def treatment_for_cohort(cohort: int, holdout_percent: int, sizes: Sequence[int]) -> int | None:
    """The treatment of an endpoint in ``cohort`` (0-99); None when it is in the holdout (control) group.

    Cohorts ``[0, holdout)`` are held out, then each additional treatment takes its ``SizePercent`` of cohorts
    in order (treatment ids 1, 2, ...), and the default treatment (id 0) the rest.
    """
    if cohort < holdout_percent:
        return None
    edge = holdout_percent
    for treatment_id, size in enumerate(sizes, start=1):
        edge += size
        if cohort < edge:
            return treatment_id
    return 0


@dataclass(frozen=True)
class TreatmentSlice:
    """One send of a run: at ``at``, to the members in ``zones`` (empty: all), of ``treatments`` only.

    ``treatments`` None means every treatment; ``holdout`` says whether this send counts the holdout (the
    first send of each zone slice does, so the holdout is counted once).
    """

    at: datetime
    zones: tuple[str, ...]
    treatments: tuple[int, ...] | None
    holdout: bool = True


def treatment_slices(slices: Sequence[LocalSlice], delays: Sequence[int]) -> list[TreatmentSlice]:
    """The sends of a run when treatments have their own start: each slice once per distinct delay.

    Args:
        slices: The run's (time-zone) slices.
        delays: Seconds after the run at which each treatment (index = treatment id) sends; empty: all at once.

    Returns:
        The sends, earliest first (a slice's treatments with the same delay go together).
    """
    if not any(delays):
        return [TreatmentSlice(piece.at, piece.zones, None) for piece in slices]
    groups: dict[int, list[int]] = {}
    for treatment_id, delay in enumerate(delays):
        groups.setdefault(delay, []).append(treatment_id)
    first = min(groups)
    sends = [
        TreatmentSlice(piece.at + timedelta(seconds=delay), piece.zones, tuple(ids), delay == first)
        for piece in slices
        for delay, ids in sorted(groups.items())
    ]
    return sorted(sends, key=lambda s: s.at)
