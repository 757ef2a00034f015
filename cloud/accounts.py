"""Head office's logins: roles, hashed passwords, and the login throttle shared by every web worker.

Passwords are hashed with scrypt (werkzeug). A failed login counts against the user name and the
address it came from; past ``MAX_FAILURES`` within ``WINDOW_MS`` further attempts are refused until
the window has passed, whatever the password. The counters live in the database, so that four
gunicorn workers do not give a guesser four times the attempts.
"""

from __future__ import annotations

import re

import peewee as pw
from werkzeug.security import check_password_hash, generate_password_hash

from cloud.store import Account, BaseModel, Plant

ROLES = ("hr_admin", "hr_staff", "plant_manager", "auditor")
USERNAME = re.compile(r"^[A-Za-z0-9_.-]{2,64}$")
MIN_PASSWORD = 10
MAX_FAILURES = 5  # per user name, and (x4) per address, within the window
WINDOW_MS = 15 * 60 * 1000
_DUMMY_HASH = generate_password_hash("not a password")


class AccountError(ValueError):
    """The account cannot be made as asked; zh-CN first."""


class LoginThrottle(BaseModel):
    """Failed logins per key ("user:NAME" or "ip:ADDRESS") in the current window."""

    key = pw.CharField(primary_key=True, max_length=160)
    failures = pw.IntegerField(default=0)
    window_start_ms = pw.BigIntegerField()


MODELS = (LoginThrottle,)


def create(username: str, password: str, role: str, now_ms: int, *, plant: str = "") -> Account:
    if not USERNAME.match(username):
        raise AccountError("用户名为 2–64 个字母、数字或 . _ - / user names are 2-64 letters, digits, '.', '_', '-'")
    if role not in ROLES:
        raise AccountError(f"角色须为 {'、'.join(ROLES)} 之一 / role must be one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"密码至少 {MIN_PASSWORD} 个字符 / the password needs {MIN_PASSWORD} characters")
    if role == "plant_manager" and Plant.get_or_none(Plant.id == plant) is None:
        raise AccountError("厂长账号须指定已登记的工厂 / a plant manager needs a registered plant")
    if Account.get_or_none(Account.username == username) is not None:
        raise AccountError(f"用户 {username} 已存在 / user {username!r} exists already")
    return Account.create(
        username=username,
        password_hash=generate_password_hash(password),
        role=role,
        plant=plant if role == "plant_manager" else "",
        created_ms=now_ms,
    )


def authenticate(username: str, password: str) -> Account | None:
    """The account, or None; the same work is done whether or not the user exists (no timing oracle)."""
    account = Account.get_or_none(Account.username == username)
    if account is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    return account if check_password_hash(account.password_hash, password) else None


def _keys(username: str, address: str) -> list[tuple[str, int]]:
    return [(f"user:{username[:64]}", MAX_FAILURES), (f"ip:{address}", MAX_FAILURES * 4)]


def throttled(username: str, address: str, now_ms: int) -> bool:
    """True while the user name or the address has used up its failures in the window."""
    for key, limit in _keys(username, address):
        row = LoginThrottle.get_or_none(LoginThrottle.key == key)
        if row is not None and row.window_start_ms > now_ms - WINDOW_MS and row.failures >= limit:
            return True
    return False


def failed(username: str, address: str, now_ms: int) -> None:
    """Count a failure (one upsert per key: two workers at once both count)."""
    expired = LoginThrottle.window_start_ms <= now_ms - WINDOW_MS
    for key, _limit in _keys(username, address):
        LoginThrottle.insert(key=key, failures=1, window_start_ms=now_ms).on_conflict(
            conflict_target=[LoginThrottle.key],
            update={
                LoginThrottle.failures: pw.Case(None, [(expired, 1)], LoginThrottle.failures + 1),
                LoginThrottle.window_start_ms: pw.Case(None, [(expired, now_ms)], LoginThrottle.window_start_ms),
            },
        ).execute()


def succeeded(username: str) -> None:
    LoginThrottle.delete().where(LoginThrottle.key == f"user:{username[:64]}").execute()
