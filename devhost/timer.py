"""Timer trigger: NCRONTAB schedules (`{second} {minute} {hour} {day} {month} {day-of-week}`, UTC) or a
TimeSpan (`hh:mm:ss`, every so long), as the Functions host reads them.

Field syntax: `*`, `5`, `1-5`, `*/15`, `10-40/10`, `5/15` (from 5, every 15), lists `1,3,5`, month names
`Jan`..`Dec` and day names `Sun`..`Sat` (0 = Sunday). Day of month and day of week must both match, as in
NCrontab. Runs of one function never overlap. `runOnStartup` fires once when the host starts. What the
host's `useMonitor` adds (a schedule status kept in storage, so a run missed while the host was down
fires as past due on the next start) is not done here: only runs due while this host is up are made.
"""

from __future__ import annotations

import logging
import re
import threading
from datetime import UTC, datetime, timedelta

from azure.functions.timer import TimerRequest

from .catalog import FunctionSpec
from .config import parse_timespan
from .invoker import Invoker

log = logging.getLogger("devhost")
_NAMES = {
    "month": ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
    "dow": ["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
}
_FIELDS = (
    ("second", 0, 59),
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day", 1, 31),
    ("month", 1, 12),
    ("dow", 0, 6),
)


def _value(text: str, field: str) -> int:
    names = _NAMES.get(field)
    if names and text.lower()[:3] in names and not text.isdigit():
        return names.index(text.lower()[:3]) + (1 if field == "month" else 0)
    if not text.isdigit():
        raise ValueError(f"{field}: {text!r} is not a number")
    return int(text)


def _field(text: str, field: str, lo: int, hi: int) -> frozenset[int]:
    out: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1 or (step_text and not step_text.isdigit()):
            raise ValueError(f"{field}: bad step in {part!r}")
        if base == "*":
            start, end = lo, hi
        elif "-" in base:
            a, b = base.split("-", 1)
            start, end = _value(a, field), _value(b, field)
        else:
            start = _value(base, field)
            end = hi if step_text else start
        if not lo <= start <= end <= hi:
            raise ValueError(f"{field}: {part!r} is outside {lo}-{hi}")
        out.update(range(start, end + 1, step))
    return frozenset(out)


class Schedule:
    """`next_after(t)`: the first time strictly after `t` (UTC) that the schedule fires."""

    def __init__(self, expression: str):
        self.expression = expression.strip()
        if re.fullmatch(r"(\d+\.)?\d+:\d+:\d+(\.\d+)?", self.expression):
            every = timedelta(seconds=parse_timespan(self.expression, 0))
            if every <= timedelta(0):
                raise ValueError(f"timer schedule {expression!r}: the interval must be positive")
            self.every: timedelta | None = every
            return
        self.every = None
        parts = self.expression.split()
        if len(parts) == 5:
            parts = ["0", *parts]
        if len(parts) != 6:
            raise ValueError(
                f"timer schedule {expression!r}: NCRONTAB needs 6 fields "
                "({second} {minute} {hour} {day} {month} {day-of-week}) or a TimeSpan hh:mm:ss"
            )
        try:
            self.sets = [_field(p, name, lo, hi) for p, (name, lo, hi) in zip(parts, _FIELDS, strict=True)]
        except ValueError as exc:
            raise ValueError(f"timer schedule {expression!r}: {exc}") from None

    def next_after(self, t: datetime) -> datetime:
        t = t.astimezone(UTC)
        if self.every is not None:
            return t + self.every
        t = t.replace(microsecond=0) + timedelta(seconds=1)
        seconds, minutes, hours, days, months, dows = (sorted(s) for s in self.sets)
        day = t.replace(hour=0, minute=0, second=0)
        for offset in range(366 * 8):  # 29 February on a Monday can be years away
            if day.day in days and day.month in months and (day.weekday() + 1) % 7 in dows:
                floor = (t.hour, t.minute, t.second) if offset == 0 else (0, 0, 0)
                for h in hours:
                    for m in minutes:
                        for s in seconds:
                            if (h, m, s) >= floor:
                                return day.replace(hour=h, minute=m, second=s)
            day += timedelta(days=1)
        raise ValueError(f"timer schedule {self.expression!r} never fires")


def timer_request(past_due: bool, last: datetime | None, next_: datetime | None) -> TimerRequest:
    def stamp(value):
        return value.isoformat() if value else None

    return TimerRequest(
        past_due=past_due,
        schedule_status={"Last": stamp(last), "Next": stamp(next_), "LastUpdated": stamp(datetime.now(UTC))},
        schedule={"AdjustForDST": False},
    )


class TimerListener(threading.Thread):
    LATE_S = 1.0  # a run this much after its time is past due

    def __init__(self, spec: FunctionSpec, invoker: Invoker, stop: threading.Event, clock=None):
        super().__init__(name=f"timer-{spec.name}", daemon=True)
        self.spec, self.invoker, self.stop = spec, invoker, stop
        self.schedule = Schedule(str(spec.trigger.get("schedule", "")))
        self.clock = clock or (lambda: datetime.now(UTC))
        self.last: datetime | None = None

    def run(self) -> None:
        if self.spec.trigger.get("runOnStartup"):
            self._fire(False, self.schedule.next_after(self.clock()), "on startup")
        due = self.schedule.next_after(self.clock())
        while not self.stop.wait(max(0.0, (due - self.clock()).total_seconds())):
            late = (self.clock() - due).total_seconds() > self.LATE_S
            following = self.schedule.next_after(max(due, self.clock()))
            self._fire(late, following, f"schedule {self.schedule.expression} at {due.isoformat()}")
            due = following

    def _fire(self, past_due: bool, next_: datetime, reason: str) -> None:
        try:
            self.invoker.submit(self.spec, timer_request(past_due, self.last, next_), {}, reason).result()
        except Exception:
            pass
        self.last = self.clock()
