"""The collection calendar, and when a report year's numbers are provisional or final.

What belongs here: the calendar of each report year (``VETREPORT_DEADLINES`` as JSON, or
the file ``VETREPORT_DEADLINES_FILE``, see infra/deadlines.example.json) and the publish
status it implies: provisional before the publication moment, final from it on; once a
year has a final version, later changes are final versions too (revisions with a
changelog).

A year's entry is either one moment (the publication deadline, as before) or a calendar:
``open`` (collection opens), ``reminders`` (moments when schools below 已确认 are
reminded), ``school_deadline`` (schools sign off by then), ``bureau_lock`` (the bureau has
approved every sign-off by then) and ``publication`` (the final version is published).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from vetreport.bucket.store import ObjectStore
from vetreport.publish.reader import read_pointer
from vetreport.publish.writer import FINAL, PROVISIONAL
from vetreport.settings import load_settings


@dataclass(frozen=True)
class Calendar:
    """One report year's collection calendar (aware datetimes; only publication required)."""

    year: int
    publication: datetime
    open_at: datetime | None = None
    reminders: tuple[datetime, ...] = ()
    school_deadline: datetime | None = None
    bureau_lock: datetime | None = None

    def steps(self) -> list[tuple[str, datetime]]:
        """The calendar's moments in time order, named as docs/operations.md names them."""
        named = [("open", self.open_at), ("school_deadline", self.school_deadline)]
        named += [("reminder", moment) for moment in self.reminders]
        named += [("bureau_lock", self.bureau_lock), ("publication", self.publication)]
        return sorted(
            ((name, moment) for name, moment in named if moment is not None),
            key=lambda step: step[1],
        )


def _moment(value: Any) -> datetime:
    moment = datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def load_calendar() -> dict[int, Calendar]:
    """The collection calendar of each report year."""
    settings = load_settings()
    text = settings.deadlines
    if not text:
        path = settings.deadlines_file
        text = path.read_text(encoding="utf-8") if path.is_file() else "{}"
    calendars = {}
    for year, value in json.loads(text).items():
        if str(year).startswith("_"):
            continue  # comments
        if not isinstance(value, dict):
            calendars[int(year)] = Calendar(int(year), _moment(value))
            continue
        optional = {
            name: _moment(value[name]) if value.get(name) else None
            for name in ("open", "school_deadline", "bureau_lock")
        }
        calendar = Calendar(
            year=int(year),
            publication=_moment(value["publication"]),
            open_at=optional["open"],
            reminders=tuple(sorted(_moment(item) for item in value.get("reminders", []))),
            school_deadline=optional["school_deadline"],
            bureau_lock=optional["bureau_lock"],
        )
        declared = [
            moment
            for moment in (
                calendar.open_at,
                calendar.school_deadline,
                calendar.bureau_lock,
                calendar.publication,
            )
            if moment is not None
        ]
        if declared != sorted(declared):
            raise ValueError(f"calendar {year}: open, school deadline, lock, publication in order")
        calendars[int(year)] = calendar
    return calendars


def load_deadlines() -> dict[int, datetime]:
    """The publication deadline of each report year: from it on, versions are final."""
    return {year: calendar.publication for year, calendar in load_calendar().items()}


def status_for(store: ObjectStore, report_year: int, now: datetime | None = None) -> str:
    """Provisional until the year's deadline; final from then on, and once final, final."""
    deadline = load_deadlines().get(report_year)
    if deadline is not None and (now or datetime.now(UTC)) >= deadline:
        return FINAL
    pointer = read_pointer(store, report_year) or {}
    return FINAL if pointer.get("status") == FINAL else PROVISIONAL


def deadline_rrule(moment: datetime) -> str:
    """A one-off RRULE for a moment (Prefect schedules are recurring; COUNT=1 is a one-off)."""
    utc = moment.astimezone(UTC)
    return f"DTSTART:{utc:%Y%m%dT%H%M%SZ}\nRRULE:FREQ=YEARLY;COUNT=1"
