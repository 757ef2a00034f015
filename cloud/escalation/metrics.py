"""Head office's escalation figures for ``/metrics`` (cloud.web.metrics.COLLECTOR_MODULES).

Open cases per plant and level, overdue steps, steps that need a person (uncertain), and the
channels' outcomes per channel and status: a provider that starts refusing shows as a rising
failed count before anyone misses a notice.
"""

from __future__ import annotations

import peewee as pw

from cloud.channels.contact_log import ContactAttempt
from cloud.escalation.models import AbsenceCase, CaseStep
from opskit.metrics import Metric


def metrics(now_s: float) -> list[Metric]:
    now_ms = int(now_s * 1000)
    cases = Metric("punchproof_cloud_open_cases", "gauge", "Open absence cases, per plant and level.")
    for plant, level, count in (
        AbsenceCase.select(AbsenceCase.plant, AbsenceCase.level, pw.fn.COUNT(AbsenceCase.id))
        .where(AbsenceCase.open_key.is_null(False))
        .group_by(AbsenceCase.plant, AbsenceCase.level)
        .tuples()
    ):
        cases.add(count, plant=str(plant), level=str(level))
    overdue = Metric("punchproof_cloud_steps_overdue", "gauge", "Steps due more than 15 minutes ago and not sent.")
    overdue.add(CaseStep.select().where((CaseStep.status == "due") & (CaseStep.due_ms < now_ms - 15 * 60_000)).count())
    uncertain = Metric("punchproof_cloud_steps_uncertain", "gauge", "Steps that may have gone out: a person checks.")
    uncertain.add(CaseStep.select().where(CaseStep.status == "uncertain").count())
    attempts = Metric(
        "punchproof_cloud_contact_attempts_total", "counter", "Contact attempts per channel and outcome (ok, failed…)."
    )
    for channel, status, count in (
        ContactAttempt.select(ContactAttempt.channel, ContactAttempt.status, pw.fn.COUNT(ContactAttempt.id))
        .group_by(ContactAttempt.channel, ContactAttempt.status)
        .tuples()
    ):
        attempts.add(count, channel=channel, status=status)
    return [cases, overdue, uncertain, attempts]
