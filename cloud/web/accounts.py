"""Head office's logins, for HR admins: who has which role (and which plant, for a plant manager)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for

from cloud import accounts
from cloud.store import Account, Plant
from cloud.web.roles import note, now_ms, require

bp = Blueprint("accounts", __name__)


@bp.route("/accounts")
@require("accounts.admin")
def index() -> Any:
    return render_template(
        "accounts.html",
        people=list(Account.select().order_by(Account.username)),
        roles=accounts.ROLES,
        plants=list(Plant.select().order_by(Plant.id)),
    )


@bp.route("/accounts", methods=["POST"])
@require("accounts.admin")
def create() -> Any:
    form = request.form
    username, role, plant = form.get("username", "").strip(), form.get("role", ""), form.get("plant", "")
    try:
        accounts.create(username, form.get("password", ""), role, now_ms(), plant=plant)
    except accounts.AccountError as err:
        note("refused", action="account.create", target=f"account:{username}", role=role, plant=plant, error=str(err))
        flash(str(err), "error")
    else:
        note("done", action="account.create", target=f"account:{username}", role=role, plant=plant)
        flash("account.create", "done")
    return redirect(url_for("accounts.index"))


@bp.route("/accounts/<username>/role", methods=["POST"])
@require("accounts.admin")
def change_role(username: str) -> Any:
    account = Account.get_or_none(Account.username == username)
    if account is None:
        abort(404)
    role, plant = request.form.get("role", ""), request.form.get("plant", "")
    problem = ""
    if role not in accounts.ROLES:
        problem = "角色无效 / unknown role"
    elif role == "plant_manager" and Plant.get_or_none(Plant.id == plant) is None:
        problem = "厂长账号须指定工厂 / a plant manager needs a plant"
    elif username == session["user"] and role != "hr_admin":
        problem = "不能降低自己的权限 / you cannot lower your own role"
    if problem:
        note("refused", action="account.role", target=f"account:{username}", role=role, plant=plant, error=problem)
        flash(problem, "error")
    else:
        Account.update(role=role, plant=plant if role == "plant_manager" else "").where(
            Account.username == username
        ).execute()
        note("done", action="account.role", target=f"account:{username}", role=role, plant=plant)
        flash("account.role", "done")
    return redirect(url_for("accounts.index"))
