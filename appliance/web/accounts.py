"""Accounts of the appliance's pages. Passwords are hashed (scrypt); there is no default one."""

from __future__ import annotations

import re

from werkzeug.security import check_password_hash, generate_password_hash

from appliance.store import Account

ROLES = ("admin", "plant_manager", "line_leader")
USERNAME = re.compile(r"^[A-Za-z0-9_.-]{2,64}$")
MIN_PASSWORD = 10


class AccountError(ValueError):
    pass


def create(username: str, password: str, role: str, now_ms: int) -> Account:
    if not USERNAME.match(username):
        raise AccountError("user names are 2-64 letters, digits, '.', '_' or '-'")
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must have at least {MIN_PASSWORD} characters")
    if Account.get_or_none(Account.username == username) is not None:
        raise AccountError(f"user {username!r} exists already")
    return Account.create(
        username=username, password_hash=generate_password_hash(password), role=role, created_ms=now_ms
    )


def authenticate(username: str, password: str) -> Account | None:
    account = Account.get_or_none(Account.username == username)
    if account is None:
        check_password_hash(generate_password_hash("x"), password)  # same time whether or not the user exists
        return None
    return account if check_password_hash(account.password_hash, password) else None
