"""The notice link page ``/n/<token>``: the employee reads the notice on a phone, says 我已收到, replies.

No login: the token (``cloud.notices.links``) is the credential, and it opens this one notice only. Everything
the page records goes through ``cloud.escalation.replies`` (contact log, case timeline, and from there the
signed evidence log). Forms carry the app's CSRF token like every other form.

The client's address: the socket's, or behind head office's reverse proxy the one it forwards, when the
configuration says a proxy is there (``[web] trusted_proxies``, docs/security.md); never guessed from headers.
The forwarding headers are recorded as received beside it.

A wrong token, an expired or a revoked one: a plain Chinese page (404, 410), the same whether or not other
tokens exist. Wrong tokens count against the address in the login throttle's table (``cloud.accounts``), so
that guessing from one address stops after ``GUESSES`` in its window (429).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import peewee as pw
from flask import Blueprint, Response, current_app, g, redirect, render_template, request, url_for

from cloud.accounts import WINDOW_MS, LoginThrottle
from cloud.escalation import replies
from cloud.escalation.models import AbsenceCase
from cloud.notices import links
from cloud.notices.records import NoticeDocument
from cloud.web.present import in_zone
from cloud.web.roles import now_ms
from opskit.download import content_disposition

bp = Blueprint("notice_link", __name__)
GUESSES = 30  # wrong tokens per address within the login throttle's window
STATUS = {"unknown": 404, "expired": 410, "revoked": 410, "throttled": 429}


def visit() -> replies.Visit:
    """The client's address as the app sees it (``[web] trusted_proxies``: the proxy's X-Forwarded-For), and
    the forwarding headers as received, recorded beside it, never believed."""
    forwarded = request.headers.get("X-Forwarded-For", "")
    real = request.headers.get("X-Real-IP", "")
    said = ", ".join(part for part in (forwarded, f"X-Real-IP {real}" if real else "") if part)
    return replies.Visit(request.remote_addr or "", said[:300], request.headers.get("User-Agent", "")[:300])


def _throttle_key(address: str) -> str:
    return f"notice:{address}"[:160]


def _guessing(address: str, now: int) -> bool:
    row = LoginThrottle.get_or_none(LoginThrottle.key == _throttle_key(address))
    return row is not None and row.window_start_ms > now - WINDOW_MS and row.failures >= GUESSES


def _guessed(address: str, now: int) -> None:
    expired = LoginThrottle.window_start_ms <= now - WINDOW_MS
    LoginThrottle.insert(key=_throttle_key(address), failures=1, window_start_ms=now).on_conflict(
        conflict_target=[LoginThrottle.key],
        update={
            LoginThrottle.failures: pw.Case(None, [(expired, 1)], LoginThrottle.failures + 1),
            LoginThrottle.window_start_ms: pw.Case(None, [(expired, now)], LoginThrottle.window_start_ms),
        },
    ).execute()


def _refused(state: str) -> Response:
    page = render_template("notice_link_error.html", state=state)
    return Response(page, status=STATUS[state], headers={"Cache-Control": "no-store"})


def _open(token: str) -> tuple[links.NoticeLink | None, Response | None]:
    """The link of ``token``, or the page that refuses it."""
    now, address = now_ms(), visit().address
    if _guessing(address, now):
        return None, _refused("throttled")
    found = links.find(token, now)
    if found.state == "unknown":
        _guessed(address, now)
    if found.state != "ok" or found.link is None:
        return None, _refused(found.state)
    return found.link, None


def _page(link: links.NoticeLink, token: str, *, error: str = "", status: int = 200) -> Response:
    doc = links.notice_of(link, token)
    case = AbsenceCase.get_or_none(AbsenceCase.id == link.case_id)
    tz = case.plant.timezone if case is not None else "Asia/Shanghai"
    settings = _notices()
    page = render_template(
        "notice_link.html",
        token=token,
        link=link,
        doc=doc,
        employer=settings.employer if settings else "",
        contact=f"{settings.contact_person} {settings.contact_phone}" if settings else "",
        tz=tz,
        in_zone=in_zone,
        reasons=replies.REASONS,
        replied=request.args.get("replied") == "1",
        error=error,
        max_mb=replies.MAX_ATTACHMENT // 2**20,
        today=datetime.fromtimestamp(now_ms() / 1000, UTC).astimezone(ZoneInfo(tz)).date().isoformat(),
    )
    return Response(page, status=status, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


def _notices() -> Any:
    return current_app.config["SETTINGS"].notices


def _doc(link: links.NoticeLink, token: str) -> NoticeDocument | None:
    return links.notice_of(link, token)


@bp.route("/n/<token>")
def show(token: str) -> Any:
    link, refused = _open(token)
    if refused is not None:
        return refused
    assert link is not None
    replies.opened(link, _doc(link, token), visit(), now_ms())
    return _page(link, token)


@bp.route("/n/<token>/ack", methods=["POST"])
def ack(token: str) -> Any:
    link, refused = _open(token)
    if refused is not None:
        return refused
    assert link is not None
    replies.acknowledged(link, _doc(link, token), visit(), now_ms())
    return redirect(url_for("notice_link.show", token=token) + "#ack")


@bp.route("/n/<token>/reply", methods=["POST"])
def reply(token: str) -> Any:
    link, refused = _open(token)
    if refused is not None:
        return refused
    assert link is not None
    upload = request.files.get("file")
    attachment = None
    if upload is not None and upload.filename:
        attachment = replies.Attachment(upload.filename, upload.read(replies.MAX_ATTACHMENT + 1))
    case = AbsenceCase.get_or_none(AbsenceCase.id == link.case_id)
    tz = case.plant.timezone if case is not None else "Asia/Shanghai"
    today = datetime.fromtimestamp(now_ms() / 1000, UTC).astimezone(ZoneInfo(tz)).date()
    try:
        replies.replied(
            link,
            _doc(link, token),
            visit(),
            now_ms(),
            reason=request.form.get("reason", "")[:32],
            return_on=request.form.get("return_on", "").strip()[:32],
            text=request.form.get("text", "").strip()[:2000],
            attachment=attachment,
            today=today,
        )
    except replies.ReplyError as err:
        zh, _sep, en = str(err).partition(" / ")
        return _page(link, token, error=en if g.lang == "en" and en else zh, status=400)
    return redirect(url_for("notice_link.show", token=token, replied="1") + "#reply")


@bp.route("/n/<token>/notice.pdf")
def pdf(token: str) -> Any:
    link, refused = _open(token)
    if refused is not None:
        return refused
    assert link is not None
    doc = _doc(link, token)
    if doc is None:
        return _refused("unknown")
    return Response(
        bytes(doc.pdf),
        mimetype="application/pdf",
        headers={
            "Content-Disposition": content_disposition(f"{doc.doc_no}.pdf", inline=True),
            "X-Content-SHA256": doc.pdf_sha256,
            "Cache-Control": "no-store",
        },
    )
