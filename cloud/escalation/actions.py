"""What people do about a case: each action checked against the state, written to the timeline
with who did it, and followed by an ``advance`` so that its consequences happen at once.

Human gates: approving the 催告函 (when the policy asks for it), confirming a termination (always;
two different people when the policy says so), the union's reply, service records (EMS 妥投,
service failed, 公告 published). An acknowledgement needs a reason code and lasts ``ack_timeout``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from cloud.escalation import cases, counting, ladder, machine, timeline
from cloud.escalation.batch import CaseBatch
from cloud.escalation.cases import ACK_REASONS, CONTACT_REASONS, CaseError, locked_case, policy_of
from cloud.escalation.models import AbsenceCase, CaseStep, CaseTask, Gate, GateApproval, Service
from cloud.store import Plant

DOCUMENTS = ("cuigao", "termination")
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


def approve(case_id: int, kind: str, *, by: str, now_ms: int, note: str = "") -> bool:
    """One person's approval of a gate; returns True when the gate is now approved."""
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
        count = (
            GateApproval.select().where((GateApproval.gate == gate) & (GateApproval.at_ms >= gate.opened_ms)).count()
        )
        done = count >= gate.required
        timeline.append(
            case,
            "approval",
            f"{by} 审批 {kind}（{count}/{gate.required}）",
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
                    (CaseStep.case == case) & (CaseStep.notice == "cuigao") & (CaseStep.status == "awaiting_approval")
                ).execute()
            if kind == "confirm_termination":
                complete_task_locked(case, "review_termination", by=by, now_ms=now_ms, proof="gate approved")
        cases.advance(case, now_ms)
        return done


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
