"""Login for head office. Passwords hashed with scrypt; forms carry a CSRF token."""

from __future__ import annotations

import functools
import hmac
import secrets
from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, redirect, render_template, request, session, url_for
from werkzeug.security import check_password_hash

from cloud.store import Account

bp = Blueprint("auth", __name__)


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
    if request.method == "POST" and not hmac.compare_digest(request.form.get("csrf", ""), session.get("csrf", "-")):
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
    target = request.args.get("next", "/")
    return redirect(target if target.startswith("/") and not target.startswith("//") else "/")


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    session.clear()
    return redirect(url_for("auth.login"))
