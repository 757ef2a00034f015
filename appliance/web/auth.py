"""Login, logout, the login requirement and CSRF tokens for every form.

A session ends at logout (every copy of its cookie with it), when the account's password or role changes
or the account is deleted, and after ``IDLE_MS`` without a request. A page that stays open (the board on
the office wall) asks the appliance every few seconds, so it stays signed in.
"""

from __future__ import annotations

import functools
import hmac
import re
import secrets
from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, redirect, render_template, request, session, url_for

from appliance.store import Account
from appliance.web import accounts, present

bp = Blueprint("auth", __name__)

IDLE_MS = 2 * 3600 * 1000
SEEN_EVERY_MS = 60 * 1000  # the idle clock is written back to the cookie at most this often

LOCAL_PATH = re.compile(r"^/[A-Za-z0-9_\-/]*$")


def local_target(target: str | None) -> str:
    """Where to go after login: only a plain path on this site, never another host (open redirect)."""
    return target if target and LOCAL_PATH.match(target) and not target.startswith("//") else "/"


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return str(session["csrf"])


def check_csrf() -> None:
    sent = request.form.get("csrf", "")
    expected = str(session.get("csrf", ""))
    # compared as bytes: compare_digest refuses str holding non-ASCII characters (a TypeError, a 500)
    if not sent or not hmac.compare_digest(sent.encode("utf-8", "replace"), expected.encode("utf-8", "replace")):
        abort(400)


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if "user" not in session:
            return redirect(url_for("auth.login", next=request.path))
        return view(*args, **kwargs)

    return wrapped


@bp.before_app_request
def _session_still_valid() -> None:
    """End a session whose account is gone, changed or idle; a request without one goes on as anonymous."""
    if "user" not in session or request.endpoint == "static":
        return
    now = present.now_ms()
    account = Account.get_or_none(Account.username == session["user"])
    if (
        account is None
        or session.get("epoch") != account.session_epoch
        or session.get("role") != account.role
        or now - int(session.get("seen", 0)) > IDLE_MS
    ):
        session.clear()
        return
    if now - int(session["seen"]) > SEEN_EVERY_MS:
        session["seen"] = now


@bp.app_context_processor
def _inject() -> dict[str, Any]:
    return {"csrf_token": csrf_token, "current_user": session.get("user")}


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    error, wait = None, 0
    if request.method == "POST":
        check_csrf()
        username, now = request.form.get("username", "")[:64], present.now_ms()
        address = request.remote_addr or ""
        wait = accounts.wait_s(username, address, now)
        if wait:  # the password is not even looked at: guessing stays slow
            return render_template("login.html", error="throttled", wait=wait), 429
        account = accounts.authenticate(username, request.form.get("password", ""))
        if account is not None:
            accounts.succeeded(username, address)
            session.clear()
            session.permanent = True
            session.update(user=account.username, role=account.role, epoch=account.session_epoch, seen=now)
            return redirect(local_target(request.args.get("next")))
        accounts.failed(username, address, now)
        error = "bad_login"
    return render_template("login.html", error=error, wait=wait), 401 if error else 200


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    check_csrf()
    if "user" in session:
        accounts.end_sessions(session["user"])  # a copy of this cookie must not outlive the logout
    session.clear()
    return redirect(url_for("auth.login"))
