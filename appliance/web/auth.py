"""Login, logout, the login requirement and CSRF tokens for every form."""

from __future__ import annotations

import functools
import hmac
import re
import secrets
from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, redirect, render_template, request, session, url_for

from appliance.web import accounts

bp = Blueprint("auth", __name__)

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
    if not sent or not hmac.compare_digest(sent, session.get("csrf", "")):
        abort(400)


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if "user" not in session:
            return redirect(url_for("auth.login", next=request.path))
        return view(*args, **kwargs)

    return wrapped


@bp.app_context_processor
def _inject() -> dict[str, Any]:
    return {"csrf_token": csrf_token, "current_user": session.get("user")}


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    error = None
    if request.method == "POST":
        check_csrf()
        account = accounts.authenticate(request.form.get("username", ""), request.form.get("password", ""))
        if account is not None:
            session.clear()
            session.permanent = True
            session["user"], session["role"] = account.username, account.role
            return redirect(local_target(request.args.get("next")))
        error = "bad_login"
    return render_template("login.html", error=error), 401 if error else 200


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    check_csrf()
    session.clear()
    return redirect(url_for("auth.login"))
