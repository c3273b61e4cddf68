"""The school-facing HTML pages: Jinja templates kept as files in templates/, rendered here.

What belongs here: the one Jinja environment (autoescaped, strict about missing values)
and a render function per page: the validation report of an upload, the list of a
school's uploads and the school's own numbers. What goes on a page is gathered elsewhere
(vetreport.school.feedback, vetreport.curate.school_index, vetreport.school.numbers_page);
a designer can change the templates without touching code.
"""

from __future__ import annotations

import functools
from typing import Any

import jinja2

ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader("vetreport.school", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


@functools.cache
def template(name: str) -> jinja2.Template:
    """A page template, compiled once per process."""
    return ENVIRONMENT.get_template(name)


def render_validation_report_page(**context: Any) -> str:
    """The report of one upload (templates/validation_report.html.j2)."""
    return template("validation_report.html.j2").render(**context)


def render_upload_list_page(
    year: int,
    submitter: str,
    uploads: list[dict[str, Any]],
    status: dict[str, Any] | None = None,
) -> str:
    """A school's uploads of a year, newest first (templates/upload_list.html.j2).

    A school's list links its own numbers page; the bureau's (``_city``) does not.
    ``status``: the school's place on the collection ladder (state, state_zh, next_step,
    note, warnings with is_explained and reason), shown above the list.
    """
    return template("upload_list.html.j2").render(
        year=year,
        submitter=submitter,
        uploads=uploads,
        status=status,
        show_numbers_link=not submitter.startswith("_"),
    )


def render_school_numbers_page(**context: Any) -> str:
    """A school's own indicators beside its city and peers (templates/school_numbers.html.j2)."""
    return template("school_numbers.html.j2").render(**context)
