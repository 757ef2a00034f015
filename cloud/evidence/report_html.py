"""The human side of the evidence bundle: the Chinese report as HTML, and the checks anyone can run with OpenSSL.

The report's content is ``cloud.evidence.report_model``'s; ``cloud.evidence.report_pdf`` draws the same model as a PDF.
"""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, select_autoescape

from cloud.evidence.report_model import (
    KEYS_NOTE,
    SCHEDULE_NOTE,
    SELF_CHECK_NOTE,
    VERIFY_STEPS,
    ReportModel,
)

_TEMPLATES = Environment(loader=PackageLoader("cloud.evidence", "templates"), autoescape=select_autoescape())


def report_html(model: ReportModel) -> str:
    return _TEMPLATES.get_template("evidence_report.html").render(
        m=model,
        schedule_note=SCHEDULE_NOTE,
        steps=VERIFY_STEPS,
        keys_note=KEYS_NOTE,
        self_check_note=SELF_CHECK_NOTE,
    )
