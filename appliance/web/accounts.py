"""Accounts of the appliance's pages. Passwords are hashed (scrypt); there is no default one.

Failed logins slow the guesser down (``opskit.throttle``), with the counters in the database so that every
web worker sees them. ``end_sessions`` ends every session of an account (logout, a new password, a new role).
"""

from __future__ import annotations

import re

from werkzeug.security import check_password_hash, generate_password_hash

from appliance.store import Account, LoginThrottle
from opskit import throttle

ROLES = ("admin", "plant_manager", "line_leader")
USERNAME = re.compile(r"^[A-Za-z0-9_.-]{2,64}$")
MIN_PASSWORD = 10


class AccountError(ValueError):
    pass


def create(username: str, password: str, role: str, now_ms: int) -> Account:
    if not USERNAME.match(username):
        raise AccountError("用户名为 2–64 个字母、数字或 . _ - / user names are 2-64 letters, digits, '.', '_' or '-'")
    if role not in ROLES:
        raise AccountError(f"角色须为 {'、'.join(ROLES)} 之一 / role must be one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"密码至少 {MIN_PASSWORD} 个字符 / the password needs {MIN_PASSWORD} characters")
    if Account.get_or_none(Account.username == username) is not None:
        raise AccountError(f"用户 {username} 已存在 / user {username!r} exists already")
    return Account.create(
        username=username, password_hash=generate_password_hash(password), role=role, created_ms=now_ms
    )


def set_password(username: str, password: str) -> None:
    """A new password; every session of the account ends."""
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"密码至少 {MIN_PASSWORD} 个字符 / the password needs {MIN_PASSWORD} characters")
    _update(username, password_hash=generate_password_hash(password))


def set_role(username: str, role: str) -> None:
    """A new role; every session of the account ends (it was signed in with the old role)."""
    if role not in ROLES:
        raise AccountError(f"角色须为 {'、'.join(ROLES)} 之一 / role must be one of {', '.join(ROLES)}")
    _update(username, role=role)


def end_sessions(username: str) -> None:
    Account.update(session_epoch=Account.session_epoch + 1).where(Account.username == username).execute()


def _update(username: str, **fields: object) -> None:
    changed = (
        Account.update(session_epoch=Account.session_epoch + 1, **fields).where(Account.username == username).execute()
    )
    if not changed:
        raise AccountError(f"没有用户 {username} / no user {username!r}")


_COUNTERS = throttle.Counters(LoginThrottle, LoginThrottle.last_ms)
wait_s = _COUNTERS.wait_s  # seconds before a login of this name from this address is heard again (0: now)
failed = _COUNTERS.failed
succeeded = _COUNTERS.succeeded


def authenticate(username: str, password: str) -> Account | None:
    account = Account.get_or_none(Account.username == username)
    if account is None:
        check_password_hash(generate_password_hash("x"), password)  # same time whether or not the user exists
        return None
    return account if check_password_hash(account.password_hash, password) else None
