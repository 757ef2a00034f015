"""What people do about a case: each action checked against the state, written to the timeline
with who did it, and followed by an ``advance`` so that its consequences happen at once.

Human gates: approving the 催告函 (when the policy asks for it), confirming a termination (always;
two different people when the policy says so), the union's reply, service records (EMS 妥投,
service failed, 公告 published). An acknowledgement needs a reason code and lasts ``ack_timeout``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cloud.escalation import cases, counting, ladder, machine, timeline
from cloud.escalation.batch import CaseBatch
from cloud.escalation.cases import ACK_REASONS, CONTACT_REASONS, CaseError, locked_case, policy_of
from cloud.escalation.models import AbsenceCase, CaseStep, CaseTask, Gate, GateApproval, Service
from cloud.notices.settings import NoticeSettings
from cloud.store import Plant

DOCUMENTS = ("cuigao", "termination")
GATE_ZH = {"approve_cuigao": "批准发送催告函", "confirm_termination": "确认解除劳动合同"}
DOCUMENT_ZH = {"cuigao": "催告函", "termination": "解除劳动合同通知书"}
RESOLUTIONS = {
    "approved_leave": ("已批准请假", "approved leave"),
    "correction": ("补卡", "attendance correction"),
    "accepted_reason": ("理由已接受", "reason accepted"),
    "returned": ("员工返岗", "employee returned"),
}
EXCUSING = ("approved_leave", "correction", "accepted_reason")  # the days were not 旷工


def _open_case(case: AbsenceCase) -> None:
    if case.open_key is None:
        raise CaseError(f"案件 {case.id} 已结案 / case {case.id} is closed")


def acknowledge(case_id: int, reason: str, *, by: str, now_ms: int, note: str = "") -> None:
    """Pause automatic outbound steps until the policy's ack timeout; statutory clocks run on."""
    if reason not in ACK_REASONS:
        raise CaseError(f"原因代码 {reason!r} 无效，可选：{'、'.join(ACK_REASONS)} / unknown reason code")
    with locked_case(case_id) as case:
        _open_case(case)
        until = now_ms + int(timedelta(hours=policy_of(case).ack_timeout_hours).total_seconds() * 1000)
        case.acked_until_ms, case.ack_reason = until, reason
        case.contacted = case.contacted or reason in CONTACT_REASONS
        case.save()
        zh, en = ACK_REASONS[reason]
        timeline.append(
            case,
            "ack",
            f"已确认（{zh}）：自动外发暂停至超时",
            f"acknowledged ({en}): automatic sending paused until the timeout",
            at_ms=now_ms,
            actor=by,
            reason=reason,
            until_ms=until,
            note=note,
        )
        cases.advance(case, now_ms)


def approve(
    case_id: int,
    kind: str,
    *,
    by: str,
    now_ms: int,
    note: str = "",
    notices: NoticeSettings | None = None,
    font_config: str = "",
) -> bool:
    """One person's approval of a gate; returns True when the gate is now approved.

    The confirmation that completes the termination's gate closes its review task saying what was reviewed: each
    draft's number and the SHA-256 of its PDF, rendered from ``notices`` as the gate showed them and kept with
    the case (``preview.reviewed``); without ``notices`` (or when no draft can be made) the task says that no
    draft was seen and why — never a bare "approved". Refused, nothing is written."""
    with cases.transaction():  # the drafts kept and the approval: all of it, or nothing when refused
        reviewed = None
        if kind == "confirm_termination" and _completes(case_id, kind):  # rendered before the case's lock
            reviewed = _reviewed(case_id, by=by, now_ms=now_ms, notices=notices, font_config=font_config)
        with locked_case(case_id) as case:
            _open_case(case)
            gate = Gate.get_or_none((Gate.case == case) & (Gate.kind == kind) & (Gate.status == "open"))
            if gate is None:
                raise CaseError(f"没有待审批的 {kind} / no open gate {kind}")
            if (
                GateApproval.select()
                .where((GateApproval.gate == gate) & (GateApproval.by == by) & (GateApproval.at_ms >= gate.opened_ms))
                .exists()
            ):
                raise CaseError(f"{by} 已审批过，需另一人确认 / {by} approved already; a second person must confirm")
            GateApproval.create(gate=gate, by=by, at_ms=now_ms, note=note)
            count = _approvals(gate)
            done = count >= gate.required
            timeline.append(
                case,
                "approval",
                f"{by} 审批 {GATE_ZH.get(kind, kind)}（{count}/{gate.required}）",
                f"{by} approved {kind} ({count}/{gate.required})",
                at_ms=now_ms,
                actor=by,
                gate=kind,
                note=note,
            )
            if done:
                Gate.update(status="approved", closed_ms=now_ms).where(Gate.id == gate.id).execute()
                if kind == "approve_cuigao":
                    CaseStep.update(status="due", due_ms=now_ms).where(
                        (CaseStep.case == case)
                        & (CaseStep.notice == "cuigao")
                        & (CaseStep.status == "awaiting_approval")
                    ).execute()
                if kind == "confirm_termination":
                    if reviewed is None:  # another approval came in meanwhile: this one completes the gate
                        reviewed = _reviewed(case_id, by=by, now_ms=now_ms, notices=notices, font_config=font_config)
                    complete_task_locked(case, "review_termination", by=by, now_ms=now_ms, proof=reviewed)
            cases.advance(case, now_ms)
            return done


def _approvals(gate: Gate) -> int:
    return GateApproval.select().where((GateApproval.gate == gate) & (GateApproval.at_ms >= gate.opened_ms)).count()


def _completes(case_id: int, kind: str) -> bool:
    """Whether one more approval completes the open gate ``kind`` (as it stands before the case's lock)."""
    gate = Gate.get_or_none((Gate.case == case_id) & (Gate.kind == kind) & (Gate.status == "open"))
    return gate is not None and _approvals(gate) + 1 >= gate.required


def _reviewed(case_id: int, *, by: str, now_ms: int, notices: NoticeSettings | None, font_config: str) -> str:
    """What the confirming person reviewed: the drafts, rendered and kept by ``preview.reviewed``."""
    from cloud.escalation import preview  # renders notices: loaded when a termination is confirmed, not before

    return preview.reviewed(AbsenceCase.get_by_id(case_id), notices, font_config, by=by, now_ms=now_ms)


def resolve(case_id: int, reason: str, *, by: str, now_ms: int, note: str = "") -> None:
    """Resolve before termination: approved leave, 补卡, or an accepted reason. Those three excuse every
    day the case counts, for good: no 旷工 total of the employee counts them again (``counting.excuse``).
    "Employee returned" excuses nothing: the days were absences and stay counted."""
    if reason not in RESOLUTIONS:
        raise CaseError(f"结案原因 {reason!r} 无效 / unknown resolution")
    with locked_case(case_id) as case:
        _open_case(case)
        _not_terminated(case)
        zh, en = _texts(reason, note)
        batch = CaseBatch.load([case])
        if reason in EXCUSING:
            counted = [k for k, row in batch.days[case.id].items() if row["status"] == "counted"]
            counting.excuse(batch, case, counted, _label(reason, by, note), by=by, now_ms=now_ms)
        machine.resolve(batch, case, reason, zh, en, actor=by, now_ms=now_ms)
        if reason in EXCUSING:
            counting.refresh_closed(batch, case, now_ms)
        batch.flush()


def excuse_days(case_id: int, reason: str, work_dates: Sequence[str], *, by: str, now_ms: int, note: str = "") -> None:
    """Some of a case's counted days resolved (approved leave, 补卡 or an accepted reason), the case open or
    already closed (the employee came back, then brought the doctor's note). The days never count again;
    the employee's open case is counted again at once: its totals drop, steps not taken yet whose basis went
    are superseded, steps taken stay taken, and its timeline says what changed. An open case left with no
    counted day is resolved for that reason."""
    if reason not in EXCUSING:
        choices = "、".join(EXCUSING)
        raise CaseError(f"免计原因 {reason!r} 无效，可选：{choices} / a day is excused by leave, 补卡 or a reason")
    with locked_case(case_id) as case:
        _not_terminated(case)
        batch = CaseBatch.load([case])
        by_date = {row["work_date"]: key for key, row in batch.days[case.id].items() if row["status"] == "counted"}
        unknown = sorted(set(work_dates) - set(by_date))
        if unknown or not work_dates:
            raise CaseError(
                f"{'、'.join(unknown) or '（无）'} 不是本案计入的缺勤日 / not a counted day of case {case.id}"
            )
        zh, en = _texts(reason, note)
        keys = [by_date[d] for d in sorted(set(work_dates))]
        counting.excuse(batch, case, keys, _label(reason, by, note), by=by, now_ms=now_ms)
        left = any(row["status"] == "counted" for row in batch.days[case.id].values())
        if case.open_key is not None and not left:
            machine.resolve(batch, case, reason, zh, en, actor=by, now_ms=now_ms)
        if case.open_key is None:
            counting.refresh_closed(batch, case, now_ms)
        batch.flush()
        plant = Plant.get_by_id(case.plant_id)
        cases.recount(plant, case.user_id, now_ms=now_ms)  # the open case, this one or a later one, counts again


def _label(reason: str, by: str, note: str) -> str:
    """Why a day no longer counts, as its row and the page show it: the resolution, who, and HR's note."""
    return f"{RESOLUTIONS[reason][0]}（{by}）{('：' + note) if note else ''}"


def _texts(reason: str, note: str) -> tuple[str, str]:
    zh, en = RESOLUTIONS[reason]
    return f"{zh}{('：' + note) if note else ''}", f"{en}{(': ' + note) if note else ''}"


def _not_terminated(case: AbsenceCase) -> None:
    if (
        Gate.select()
        .where((Gate.case == case) & (Gate.kind == "confirm_termination") & (Gate.status == "approved"))
        .exists()
    ):
        raise CaseError("解除已确认，不能直接结案 / the termination is confirmed; it cannot simply be resolved")


def open_welfare(case_id: int, *, by: str, now_ms: int, note: str) -> None:
    """Accident, illness or detention suspected: disciplinary steps pause until HR closes it."""
    with locked_case(case_id) as case:
        _open_case(case)
        case.welfare = "open"
        case.save()
        CaseTask.insert(
            case=case,
            kind="welfare_check",
            title_zh="福利核查：联系紧急联系人，必要时向医院/110 查询",
            title_en="welfare check: call the emergency contact; consider hospitals or 110",
            due_ms=now_ms + ladder.DAY_MS,
            created_ms=now_ms,
        ).on_conflict_ignore().execute()
        timeline.append(
            case, "welfare_open", f"开启福利核查：{note}", f"welfare check opened: {note}", at_ms=now_ms, actor=by
        )


def close_welfare(
    case_id: int, finding: str, *, by: str, now_ms: int, note: str = "", accident_ms: int | None = None
) -> None:
    """``none_found`` resumes the ladder; ``accident`` starts the 工伤 track (30-day timer); ``illness``
    the medical track."""
    if finding not in ("none_found", "accident", "illness"):
        raise CaseError("核查结论：none_found、accident 或 illness / finding is none_found, accident or illness")
    with locked_case(case_id) as case:
        _open_case(case)
        complete_task_locked(case, "welfare_check", by=by, now_ms=now_ms, proof=note)
        if finding == "none_found":
            case.welfare = "closed"
            timeline.append(
                case,
                "welfare_closed",
                f"福利核查结束：未发现意外或疾病（{note}）",
                f"welfare check closed: nothing found ({note})",
                at_ms=now_ms,
                actor=by,
            )
            case.save()
            cases.advance(case, now_ms)
            return
        case.welfare = "injury" if finding == "accident" else "illness"
        case.state, case.wake_ms = ladder.MEDICAL, None
        case.save()
        for step in CaseStep.select().where((CaseStep.case == case) & CaseStep.status.in_(ladder.PENDING)):
            cases._supersede_step(case, step.key, "转入医疗/工伤处理", "moved to the medical/injury track", now_ms)
        if finding == "accident":
            days = policy_of(case).injury_report_days
            due = (accident_ms or now_ms) + days * ladder.DAY_MS
            CaseTask.insert(
                case=case,
                kind="injury_report",
                title_zh=f"{days} 日内提出工伤认定申请（工伤保险条例第十七条）",
                title_en=f"apply for work-injury recognition within {days} days",
                due_ms=due,
                statutory=True,
                created_ms=now_ms,
            ).on_conflict_ignore().execute()
        timeline.append(
            case,
            "medical_track",
            f"转入{'工伤' if finding == 'accident' else '医疗'}处理：{note}",
            f"moved to the {finding} track: {note}",
            at_ms=now_ms,
            actor=by,
            accident_ms=accident_ms,
        )


def record_service(
    case_id: int, document: str, *, by: str, now_ms: int, served_ms: int, method: str, proof: str
) -> None:
    """A document was served (EMS 妥投, signed receipt, electronic delivery confirmed)."""
    _document(document)
    with locked_case(case_id) as case:
        _open_case(case)
        Service.insert(
            case=case, document=document, status="served", served_ms=served_ms, method=method, proof=proof
        ).on_conflict(
            conflict_target=[Service.case, Service.document],
            update={
                Service.status: "served",
                Service.served_ms: served_ms,
                Service.method: method,
                Service.proof: proof,
            },
        ).execute()
        timeline.append(
            case,
            "served",
            f"{DOCUMENT_ZH[document]}已送达（{method}）",
            f"{document} served ({method})",
            at_ms=now_ms,
            actor=by,
            served_ms=served_ms,
            proof=proof,
        )
        cases.advance(case, now_ms)


def record_service_failed(case_id: int, document: str, *, by: str, now_ms: int, proof: str) -> None:
    """Every channel failed (EMS 退回, 空号): a public notice (公告) is the way left."""
    _document(document)
    with locked_case(case_id) as case:
        _open_case(case)
        Service.insert(case=case, document=document, status="failed", proof=proof).on_conflict(
            conflict_target=[Service.case, Service.document], update={Service.status: "failed", Service.proof: proof}
        ).execute()
        # the deadline stated stays: it moves on when service is achieved another way (公告), never earlier
        CaseTask.insert(
            case=case,
            kind=f"public_notice_{document}",
            title_zh="公告送达：登报或网上公告，张贴的须拍照/录像",
            title_en="serve by public notice: newspaper or online; photograph any posting",
            created_ms=now_ms,
        ).on_conflict_ignore().execute()
        timeline.append(
            case,
            "service_failed",
            f"{document} 各渠道均未送达：准备公告",
            f"{document}: every channel failed; public notice next",
            at_ms=now_ms,
            actor=by,
            proof=proof,
        )
        cases.advance(case, now_ms)


def record_publication(case_id: int, document: str, *, by: str, now_ms: int, published_ms: int, proof: str) -> None:
    """公告 published: deemed served after the policy's public-notice days (民事诉讼法 第九十五条: 30)."""
    _document(document)
    with locked_case(case_id) as case:
        _open_case(case)
        deemed = published_ms + policy_of(case).public_notice_days * ladder.DAY_MS
        Service.update(status="published", published_ms=published_ms, deemed_ms=deemed, proof=proof).where(
            (Service.case == case) & (Service.document == document)
        ).execute()
        complete_task_locked(case, f"public_notice_{document}", by=by, now_ms=now_ms, proof=proof)
        timeline.append(
            case,
            "published",
            f"{document} 已公告，视为送达日：公告后 {policy_of(case).public_notice_days} 日",
            f"{document} published; deemed served {policy_of(case).public_notice_days} days later",
            at_ms=now_ms,
            actor=by,
            deemed_ms=deemed,
            proof=proof,
        )
        cases.advance(case, now_ms)


def complete_task(case_id: int, kind: str, *, by: str, now_ms: int, proof: str) -> None:
    with locked_case(case_id) as case:
        complete_task_locked(case, kind, by=by, now_ms=now_ms, proof=proof)
        if case.open_key is not None:
            cases.advance(case, now_ms)


def complete_task_locked(case: AbsenceCase, kind: str, *, by: str, now_ms: int, proof: str) -> None:
    task = CaseTask.get_or_none((CaseTask.case == case) & (CaseTask.kind == kind) & (CaseTask.status == "open"))
    if task is None:
        return
    CaseTask.update(status="done", done_ms=now_ms, done_by=by, proof=proof).where(CaseTask.id == task.id).execute()
    timeline.append(
        case,
        "task_done",
        f"完成：{task.title_zh}",
        f"done: {task.title_en}",
        at_ms=now_ms,
        actor=by,
        task=kind,
        proof=proof,
    )


def _document(document: str) -> None:
    if document not in DOCUMENTS:
        raise CaseError(f"文书 {document!r} 无效 / document is one of {', '.join(DOCUMENTS)}")


# -- a work-injury (工伤) claim, at any level, before or after the termination (issue #19, item 11) ----------

INJURY_OUTCOMES = {
    "recognised": ("认定为工伤", "recognised as a work injury"),
    "rejected": ("不予认定为工伤", "not recognised as a work injury"),
}
# post-termination tasks that would harm the worker while the claim is undecided: 停保 ends the employer's
# 工伤保险 for him, and so does moving his social-insurance relation away. The 解除证明, the final wages, the
# unemployment list and keeping the file are owed to him whatever the outcome: they stay open.
HELD_TASKS = ("social_insurance_stop", "archive_transfer")
HELD_WHY_ZH = "暂缓：工伤认定申请待定（{day} 登记），认定结论作出前不办理"
HELD_WHY_EN = "held: a work-injury claim is pending (registered {day}); not before the decision"
YEAR_DAYS = 365


@dataclass(frozen=True)
class InjuryClaim:
    """The case's latest work-injury claim, as its timeline records it (no table of its own)."""

    case_id: int
    at_ms: int
    by: str
    accident_ms: int
    accident_day: str  # the plant's date of the accident, YYYY-MM-DD
    claimant: str
    note: str
    terminated: bool  # the termination had taken effect when the claim came
    outcome: str = ""  # "" (undecided) | recognised | rejected
    decided_ms: int | None = None
    decided_by: str = ""
    decision_note: str = ""
    held_steps: dict[str, str] = field(default_factory=dict)  # step key -> its status before the hold
    before: dict[str, Any] = field(default_factory=dict)  # state and welfare before the claim stopped the ladder

    @property
    def pending(self) -> bool:
        return self.outcome == ""


def injury_claim(case: AbsenceCase | int) -> InjuryClaim | None:
    """The latest claim of the case with its decision, read from the timeline; None when there is none."""
    case_id = case if isinstance(case, int) else case.id
    claim: InjuryClaim | None = None
    for item in timeline.items(case_id):
        data = item.data
        if item.kind == "injury_claim":
            fresh = claim is None or not claim.pending
            held = {} if fresh or claim is None else dict(claim.held_steps)
            held.update(data.get("held_steps", {}))
            claim = InjuryClaim(
                case_id,
                item.at_ms,
                item.actor,
                int(data["accident_ms"]),
                str(data["accident_day"]),
                str(data.get("claimant", "")),
                str(data.get("note", "")),
                bool(data.get("terminated")),
                held_steps=held,
                before=dict(data.get("before", {})) if fresh or claim is None else claim.before,
            )
        elif item.kind == "injury_decision" and claim is not None:
            claim = replace(
                claim,
                outcome=str(data["outcome"]),
                decided_ms=item.at_ms,
                decided_by=item.actor,
                decision_note=str(data.get("note", "")),
            )
    return claim


def _plant_day(case: AbsenceCase, at_ms: int) -> str:
    return datetime.fromtimestamp(at_ms / 1000, UTC).astimezone(ZoneInfo(case.plant.timezone)).date().isoformat()


def _terminated(case: AbsenceCase) -> bool:
    """The termination took effect (served: L8), whether the case is still open or closed since."""
    return case.effective_ms is not None


def _termination_underway(case: AbsenceCase) -> bool:
    """A termination drafted, confirmed or sent, not yet in effect."""
    return (
        case.level >= 5
        or Gate.select()
        .where((Gate.case == case) & (Gate.kind == "confirm_termination") & (Gate.status.in_(("open", "approved"))))
        .exists()
    )


def review_text(case: AbsenceCase, accident_day: str) -> tuple[str, str]:
    """Why the termination (or the disciplinary steps) must be reviewed, in plain words: what 第四十二条 bars and
    what it does not, and the one question the 第三十九条 ground turns on. Shown on the claim's page and in the
    timeline; not legal advice."""
    if _terminated(case):
        basis_zh = "本案已以员工严重违反规章制度（连续旷工）为由解除劳动合同，依据劳动合同法第三十九条。"
        basis_en = "The contract was terminated for serious breach of the rules (unauthorised absence), art. 39."
    elif _termination_underway(case):
        basis_zh = "本案正以员工严重违反规章制度（连续旷工）为由办理解除，依据劳动合同法第三十九条。"
        basis_en = "A termination for serious breach of the rules (unauthorised absence, art. 39) is under way."
    else:
        basis_zh = "本案正按规章制度处理缺勤（如达到旷工标准，拟依劳动合同法第三十九条处理）。"
        basis_en = "The absence is being handled under the rules (art. 39 if it reaches the handbook's threshold)."
    zh = (
        f"{basis_zh}劳动合同法第四十二条所列情形——如在本单位患职业病或者因工负伤并被确认丧失或者部分丧失劳动能力的"
        "（第四十二条第（二）项）、患病或者非因工负伤在规定的医疗期内的（第四十二条第（三）项）——只禁止用人单位依照"
        "第四十条、第四十一条解除劳动合同，并不禁止依照第三十九条解除。但第三十九条的依据是旷工：须查明本案缺勤各日是否"
        f"确因 {accident_day} 所称事故受伤（住院、治疗、无法联系单位）所致——若是，这些日子有正当理由，不构成旷工，"
        "解除依据即不成立。请核实事故是否发生及其日期、经过（病历、交通事故认定书等），受伤后何时起能够请假或联系单位，"
        "并查看事故当日考勤设备的记录（本页证据包）。认定结论作出前，停保和社会保险关系转移暂缓办理；职工或者其近亲属认为"
        "是工伤、用人单位不认为是工伤的，由用人单位承担举证责任（工伤保险条例第十九条）。以上为提示，不是法律意见，"
        "请咨询劳动法律师。"
    )
    en = (
        f"{basis_en} Art. 42 (e.g. (2) a work injury with a confirmed loss of working capacity, (3) illness or a "
        "non-work injury within the medical treatment period) bars termination under arts. 40 and 41 only, not under "
        "art. 39. But art. 39 rests on unauthorised absence: check whether the case's absent days were in fact "
        f"caused by the injury claimed for {accident_day} (in hospital, treated, unable to reach the employer). If "
        "they were, they had a valid reason, were no unauthorised absence, and the ground for the termination fails. "
        "Check the accident, its date and course (medical records, the traffic accident report), when the worker "
        "could first have asked for leave or called, and what the terminals recorded that day (the bundle on this "
        "page). Until the decision, stopping social insurance and moving the social-insurance relation are held. "
        "Where the worker or family holds it a work injury and the employer does not, the employer bears the burden "
        "of proof (Regulations on Work-Related Injury Insurance, art. 19). A prompt, not legal advice: consult a "
        "labour lawyer."
    )
    return zh, en


def _report_task(case: AbsenceCase, accident_ms: int, accident_day: str, now_ms: int) -> tuple[str, str, int]:
    """The 工伤认定 application task: within the policy's days of the accident (工伤保险条例第十七条), or, that
    window gone, what is left: the employer still applies at once and pays meanwhile; the worker or the family
    have a year."""
    days = policy_of(case).injury_report_days
    due = accident_ms + days * ladder.DAY_MS
    if now_ms <= due:
        return (
            f"事故日 {accident_day} 起 {days} 日内向社会保险行政部门提出工伤认定申请（工伤保险条例第十七条）",
            f"apply for work-injury recognition within {days} days of the accident on {accident_day}",
            due,
        )
    return (
        f"单位申请工伤认定的 {days} 日期限已过（事故日 {accident_day}）：仍应尽快申请，期间的工伤待遇等费用由单位负担；"
        f"职工或其近亲属可在事故之日起 1 年内自行申请（工伤保险条例第十七条），单位须配合调查核实",
        f"the employer's {days} days to apply have passed (accident {accident_day}): apply at once, the employer pays "
        "meanwhile; the worker or family may apply within one year of the accident; the employer must cooperate",
        due,
    )


def claim_injury(case_id: int, *, by: str, now_ms: int, accident_ms: int, claimant: str, note: str = "") -> InjuryClaim:
    """The worker or his family says the absence came from a work accident (工伤). Recorded in the timeline (who
    claims, the accident's date, the note); the 工伤认定 application task (工伤保险条例第十七条) and a review of the
    termination open; what would harm the worker while the claim is undecided is held: 停保 and moving the
    social-insurance relation (after the termination), every outbound step not taken yet and the ladder itself
    (before it: the 解除通知书 is not sent). Held rows keep their kind, so the ladder never makes them again.

    At any level of an open case, and on a closed one whose termination took effect. The same claim twice
    changes nothing; one with other facts is recorded and moves the application task's date."""
    claimant = claimant.strip()
    if not claimant:
        raise CaseError("请填写申请人（如：员工父亲）/ say who claims the injury (e.g. the worker's father)")
    if accident_ms > now_ms:
        raise CaseError("事故日期不能晚于今天 / the accident cannot be in the future")
    with locked_case(case_id) as case:
        if case.open_key is None and not _terminated(case):
            raise CaseError(
                f"案件 {case.id} 已结案且未解除劳动合同：请直接按工伤认定程序办理 / case {case.id} is closed without a "
                "termination: handle the claim as a work-injury application directly"
            )
        last = injury_claim(case)
        day = _plant_day(case, accident_ms)
        given = (accident_ms, claimant, note)
        if last is not None and last.pending and (last.accident_ms, last.claimant, last.note) == given:
            return last  # the same claim again: nothing new
        if last is not None and last.outcome == "recognised":
            raise CaseError(
                f"已于 {_plant_day(case, last.decided_ms or 0)} 认定为工伤 / already recognised as a work injury"
            )
        fresh = last is None or not last.pending
        before: dict[str, str] = {}
        today = _plant_day(case, now_ms)
        why_zh, why_en = HELD_WHY_ZH.format(day=today), HELD_WHY_EN.format(day=today)
        held_tasks: list[str] = []
        for kind in HELD_TASKS:
            n = (
                CaseTask.update(status="held", proof=why_zh)
                .where((CaseTask.case == case) & (CaseTask.kind == kind) & (CaseTask.status == "open"))
                .execute()
            )
            if n:
                held_tasks.append(kind)
        held_steps: dict[str, str] = {}
        if not _terminated(case) and case.open_key is not None:
            for step in CaseStep.select().where((CaseStep.case == case) & CaseStep.status.in_(ladder.PENDING)):
                n = (  # conditional: a runner may have claimed it this moment, and then it is going out
                    CaseStep.update(status="held", error=f"{why_zh} / {why_en}")
                    .where((CaseStep.id == step.id) & CaseStep.status.in_(ladder.PENDING))
                    .execute()
                )
                if n:
                    held_steps[step.key] = step.status
            if case.state != ladder.MEDICAL:
                before = {"state": case.state, "welfare": case.welfare}
            case.state, case.wake_ms = ladder.MEDICAL, None  # the ladder stops: nothing new is planned or sent
            case.welfare = "injury"
            case.save()
        zh_title, en_title, due = _report_task(case, accident_ms, day, now_ms)
        report = CaseTask.get_or_none((CaseTask.case == case) & (CaseTask.kind == "injury_report"))
        if report is None:
            CaseTask.create(
                case=case,
                kind="injury_report",
                title_zh=zh_title,
                title_en=en_title,
                due_ms=due,
                statutory=True,
                created_ms=now_ms,
            )
        elif report.status in ("open", "superseded") or fresh:
            CaseTask.update(
                title_zh=zh_title, title_en=en_title, due_ms=due, status="open", done_ms=None, done_by="", proof=""
            ).where(CaseTask.id == report.id).execute()
        review_zh, review_en = (
            ("复核解除决定", "review the termination")
            if _terminated(case) or _termination_underway(case)
            else ("复核旷工认定", "review the absence record")
        )
        title_zh = (
            f"{review_zh}：查明本案缺勤是否因 {day} 所称事故受伤所致（若是，即不构成旷工，第三十九条的解除依据不成立）"
        )
        title_en = (
            f"{review_en}: were the absent days caused by the injury claimed for {day}? If so they were no "
            "unauthorised absence and the art. 39 ground fails"
        )
        review = CaseTask.get_or_none((CaseTask.case == case) & (CaseTask.kind == "review_injury"))
        if review is None:
            CaseTask.create(case=case, kind="review_injury", title_zh=title_zh, title_en=title_en, created_ms=now_ms)
        elif review.status != "open":
            CaseTask.update(
                title_zh=title_zh, title_en=title_en, status="open", done_ms=None, done_by="", proof=""
            ).where(CaseTask.id == review.id).execute()
        stopped = CaseTask.get_or_none(
            (CaseTask.case == case) & (CaseTask.kind == "social_insurance_stop") & (CaseTask.status == "done")
        )
        why_zh, why_en = review_text(case, day)
        timeline.append(
            case,
            "injury_claim",
            f"{claimant}称员工于 {day} 发生事故受伤，申请认定工伤"
            + (f"（{note}）" if note else "")
            + (f"；已暂缓：{'、'.join(_HELD_ZH[k] for k in held_tasks)}" if held_tasks else "")
            + ("；未执行的外发步骤暂缓，升级暂停" if held_steps else "")
            + ("；注意：停保已于此前办理，如认定工伤须与社保经办机构核实" if stopped else "")
            + f"。{why_zh}",
            f"{claimant} says the worker was injured in an accident on {day} and claims a work injury"
            + (f" ({note})" if note else "")
            + (f"; held: {', '.join(held_tasks)}" if held_tasks else "")
            + ("; outbound steps not taken yet are held and the ladder paused" if held_steps else "")
            + ("; note: social insurance was already stopped" if stopped else "")
            + f". {why_en}",
            at_ms=now_ms,
            actor=by,
            accident_ms=accident_ms,
            accident_day=day,
            claimant=claimant,
            note=note,
            terminated=_terminated(case),
            held_tasks=held_tasks,
            held_steps=held_steps,
            before=before,
        )
        claim = injury_claim(case)
        assert claim is not None
        return claim


_HELD_ZH = {"social_insurance_stop": "社保减员/停保", "archive_transfer": "档案和社会保险关系转移"}


def decide_injury_claim(case_id: int, outcome: str, *, by: str, now_ms: int, note: str = "") -> InjuryClaim:
    """The 社会保险行政部门's decision on the claim. ``recognised``: what was held stays held, and a task says to
    have the termination reviewed by counsel and revoked (or the termination stopped, before it took effect).
    ``rejected``: what was held is released (停保 due again from now, the ladder resumes where it stood); the
    review stays open: a claim not recognised as a *work* injury may still be an injury or illness that excused
    the days."""
    if outcome not in INJURY_OUTCOMES:
        raise CaseError(
            f"结论 {outcome!r} 无效：recognised（认定工伤）或 rejected（不予认定）/ outcome is recognised or rejected"
        )
    with locked_case(case_id) as case:
        claim = injury_claim(case)
        if claim is None or not claim.pending:
            raise CaseError(f"案件 {case.id} 没有待定的工伤申请 / case {case.id} has no undecided work-injury claim")
        zh, en = INJURY_OUTCOMES[outcome]
        complete_task_locked(case, "injury_report", by=by, now_ms=now_ms, proof=f"{zh}{('：' + note) if note else ''}")
        if outcome == "recognised":
            terminated = _terminated(case)
            CaseTask.insert(
                case=case,
                kind="injury_recognised",
                title_zh=(
                    "已认定工伤：请劳动法律师复核解除决定，依法撤销解除、恢复劳动关系和社会保险；暂缓事项不得办理"
                    if terminated
                    else "已认定工伤：停止本案解除程序，缺勤按工伤（停工留薪期）处理，请劳动法律师复核"
                ),
                title_en=(
                    "recognised as a work injury: have counsel review the termination, revoke it and restore the "
                    "employment and social insurance; do not carry out what is held"
                    if terminated
                    else "recognised as a work injury: stop the termination; treat the absence as injury leave; "
                    "consult counsel"
                ),
                created_ms=now_ms,
            ).on_conflict_ignore().execute()
            timeline.append(
                case,
                "injury_decision",
                f"工伤认定结论：{zh}{('（' + note + '）') if note else ''}。暂缓事项继续暂缓；"
                + ("请律师复核并撤销解除决定" if terminated else "本案解除程序停止"),
                f"decision: {en}{(' (' + note + ')') if note else ''}. What is held stays held; "
                + ("counsel to review and revoke the termination" if terminated else "the termination stops"),
                at_ms=now_ms,
                actor=by,
                outcome=outcome,
                note=note,
            )
        else:
            released: list[str] = []
            for task in CaseTask.select().where((CaseTask.case == case) & (CaseTask.status == "held")):
                CaseTask.update(status="open", proof="", due_ms=max(task.due_ms or now_ms, now_ms)).where(
                    CaseTask.id == task.id
                ).execute()
                released.append(task.kind)
            for key, status in claim.held_steps.items():
                CaseStep.update(status=status, due_ms=now_ms, error="").where(
                    (CaseStep.case == case) & (CaseStep.key == key) & (CaseStep.status == "held")
                ).execute()
            if claim.before and case.state == ladder.MEDICAL:
                case.state = str(claim.before.get("state", ladder.STATES[case.level]))
                case.welfare = str(claim.before.get("welfare", ""))
                case.save()
            timeline.append(
                case,
                "injury_decision",
                f"工伤认定结论：{zh}{('（' + note + '）') if note else ''}。暂缓事项恢复办理"
                + (f"（{'、'.join(_HELD_ZH.get(k, k) for k in released)}自今日起到期）" if released else "")
                + ("，升级从原处继续" if claim.held_steps or claim.before else "")
                + "。复核任务仍须完成：不予认定工伤不等于缺勤无正当理由，"
                "如确因受伤或患病就医，仍可能属于正当理由或处于医疗期",
                f"decision: {en}{(' (' + note + ')') if note else ''}. What was held is released"
                + (f" ({', '.join(released)} due from today)" if released else "")
                + ("; the ladder resumes where it stood" if claim.held_steps or claim.before else "")
                + ". The review still stands: an injury not recognised as a work injury may still excuse the days",
                at_ms=now_ms,
                actor=by,
                outcome=outcome,
                note=note,
                released_tasks=released,
                released_steps=sorted(claim.held_steps),
            )
            if case.open_key is not None:
                cases.advance(case, now_ms)
        decided = injury_claim(case)
        assert decided is not None
        return decided
