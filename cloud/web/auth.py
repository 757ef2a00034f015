"""Login for head office: hashed passwords, a throttle on guessing, CSRF on every form, sessions that expire.

A session ends after ``IDLE_MS`` without a request, and at the latest after Flask's
``PERMANENT_SESSION_LIFETIME`` (8 h, checked when the signed cookie is read). The account is read
again at every request, so a changed role or a removed account takes effect at once.
"""

from __future__ import annotations

import functools
import hmac
import re
import secrets
from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, current_app, redirect, render_template, request, session, url_for

from cloud import accounts
from cloud.clock import SystemClock, to_ms
from cloud.store import Account

bp = Blueprint("auth", __name__)

LOCAL_PATH = re.compile(r"^/[A-Za-z0-9_\-/]*$")
IDLE_MS = 30 * 60 * 1000
SEEN_EVERY_MS = 60 * 1000  # the cookie is rewritten at most once a minute for the idle clock


def local_target(target: str | None) -> str:
    """Where to go after login: only a plain path on this site, never another host (open redirect)."""
    return target if target and LOCAL_PATH.match(target) and not target.startswith("//") else "/"


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if "user" in session:
            return view(*args, **kwargs)
        return redirect(url_for("auth.login", next=request.path))

    return wrapped


def _now_ms() -> int:
    return to_ms(current_app.config.get("CLOCK", SystemClock()).now())


def _token() -> str:
    return str(session.setdefault("csrf", secrets.token_urlsafe(32)))


@bp.app_context_processor
def _inject() -> dict[str, Any]:
    return {"csrf_token": _token, "current_user": session.get("user"), "current_role": session.get("role")}


@bp.before_app_request
def _session() -> None:
    """Expire an idle session; refresh the role and plant from the account (or end the session)."""
    if "user" not in session or request.endpoint in ("static", "metrics.metrics"):
        return
    now = _now_ms()
    seen = int(session.get("seen", 0))
    account = Account.get_or_none(Account.username == session["user"])
    if account is None or now - seen > IDLE_MS or session.get("stamp") != accounts.session_stamp(account):
        session.clear()
        return
    if (account.role, account.plant) != (session.get("role"), session.get("plant")):
        session.update(role=account.role, plant=account.plant)
    if now - seen > SEEN_EVERY_MS:
        session["seen"] = now


@bp.before_app_request
def _csrf() -> None:
    if request.method != "POST" or request.blueprint == "channel_receipts":  # providers post; the URL's token guards
        return
    sent, expected = request.form.get("csrf", ""), str(session.get("csrf", ""))
    # compared as bytes: compare_digest refuses str holding non-ASCII characters (a TypeError, a 500)
    if not sent or not expected or not hmac.compare_digest(sent.encode("utf-8", "replace"), expected.encode()):
        abort(400)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if request.method == "GET":
        return render_template("login.html", error=None)
    username, now = request.form.get("username", ""), _now_ms()
    username = username[:64]
    address = request.remote_addr or ""
    wait = accounts.wait_s(username, address, now)
    if wait:  # the password is not even looked at: guessing stays slow
        return render_template("login.html", error="throttled", wait=wait), 429
    account = accounts.authenticate(username, request.form.get("password", ""))
    if account is None:
        accounts.failed(username, address, now)
        return render_template("login.html", error="bad_login"), 401
    accounts.succeeded(username, address)
    session.clear()  # a new session, and with it a new CSRF token
    session.permanent = True
    stamp = accounts.session_stamp(account)
    session.update(user=account.username, role=account.role, plant=account.plant, seen=now, stamp=stamp)
    return redirect(local_target(request.args.get("next")))


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    if "user" in session:
        accounts.end_sessions(session["user"])  # a copy of this cookie must not outlive the logout
    session.clear()
    return redirect(url_for("auth.login"))
