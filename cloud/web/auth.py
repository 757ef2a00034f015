"""Login for head office. Passwords hashed with scrypt; forms carry a CSRF token."""

from __future__ import annotations

import functools
import hmac
import re
import secrets
from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, redirect, render_template, request, session, url_for
from werkzeug.security import check_password_hash

from cloud.store import Account

bp = Blueprint("auth", __name__)

LOCAL_PATH = re.compile(r"^/[A-Za-z0-9_\-/]*$")


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


def _token() -> str:
    return str(session.setdefault("csrf", secrets.token_urlsafe(32)))


@bp.app_context_processor
def _inject() -> dict[str, Any]:
    return {"csrf_token": _token, "current_user": session.get("user")}


@bp.before_app_request
def _csrf() -> None:
    if request.method != "POST" or request.blueprint == "channel_receipts":  # providers post; the URL's token guards
        return
    sent, expected = request.form.get("csrf", ""), session.get("csrf", "")
    if not sent or not expected or not hmac.compare_digest(sent, expected):
        abort(400)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if request.method == "GET":
        return render_template("login.html", error=None)
    account = Account.get_or_none(Account.username == request.form.get("username", ""))
    if account is None or not check_password_hash(account.password_hash, request.form.get("password", "")):
        return render_template("login.html", error="bad_login"), 401
    session.clear()
    session.permanent = True
    session.update(user=account.username, role=account.role)
    return redirect(local_target(request.args.get("next")))


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    session.clear()
    return redirect(url_for("auth.login"))
