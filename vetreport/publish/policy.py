"""When a report year's numbers are provisional and when they are final.

What belongs here: the collection deadline of each report year (``VETREPORT_DEADLINES`` as
JSON, or the file ``VETREPORT_DEADLINES_FILE``) and the publish status it implies:
provisional before the deadline, final from it on; once a year has a final version, later
changes are final versions too (revisions with a changelog).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from vetreport.bucket.store import ObjectStore
from vetreport.publish.reader import read_pointer
from vetreport.publish.writer import FINAL, PROVISIONAL
from vetreport.settings import load_settings


def load_deadlines() -> dict[int, datetime]:
    """The collection deadline of each report year (aware datetimes)."""
    settings = load_settings()
    text = settings.deadlines
    if not text:
        path = settings.deadlines_file
        text = path.read_text(encoding="utf-8") if path.is_file() else "{}"
    raw = json.loads(text)
    deadlines = {}
    for year, value in raw.items():
        if str(year).startswith("_"):
            continue  # comments
        moment = datetime.fromisoformat(str(value))
        deadlines[int(year)] = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return deadlines


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
