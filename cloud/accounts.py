"""Head office's logins: roles, hashed passwords, and the login throttle shared by every web worker.

Passwords are hashed with scrypt (werkzeug). A failed login counts against the address it came from, the
user name at that address and the user name from anywhere; past each key's free failures the next attempt
waits longer and longer (``opskit.throttle``): a guesser is slowed down, the real user is never locked out
(a minute at most from another address). The counters live in the database, so that every gunicorn worker
sees the same ones. In ``LoginThrottle`` rows of the login keys, ``window_start_ms`` is the key's latest
failure.
"""

from __future__ import annotations

import hashlib
import re

import peewee as pw
from werkzeug.security import check_password_hash, generate_password_hash

from cloud.store import Account, BaseModel, Plant
from opskit import throttle

ROLES = ("hr_admin", "hr_staff", "plant_manager", "auditor")
USERNAME = re.compile(r"^[A-Za-z0-9_.-]{2,64}$")
MIN_PASSWORD = 10
WINDOW_MS = 15 * 60 * 1000  # the notice links' wrong-token count (cloud.web.notice_link)
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


_COUNTERS = throttle.Counters(LoginThrottle, LoginThrottle.window_start_ms)
wait_s = _COUNTERS.wait_s  # seconds before a login of this name from this address is heard again (0: now)
failed = _COUNTERS.failed
succeeded = _COUNTERS.succeeded


def end_sessions(username: str) -> None:
    """Every session of the account ends (logout: a copy of the cookie must not outlive it)."""
    Account.update(session_epoch=Account.session_epoch + 1).where(Account.username == username).execute()


def session_stamp(account: Account) -> str:
    """What a session must still match: the account's epoch and its password (a new password ends it)."""
    digest = hashlib.sha256(account.password_hash.encode()).hexdigest()[:16]
    return f"{account.session_epoch}:{digest}"
