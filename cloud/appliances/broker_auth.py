"""Who may use the broker, and for which topics: one credential per appliance and per cloud worker set.

The cloud database holds each broker user with the hash of its password (never the password), so
Mosquitto's password files and ACL file can be written again at any time from it. The files are
Mosquitto's own formats: ``user:$7$...`` lines (PBKDF2-SHA512, as ``mosquitto_passwd`` writes them)
and ``user`` / ``topic`` ACL lines, deny by default. The topics are ledger.topics' table: an appliance
publishes only under its own ``up/``, ``status`` and ``device/`` and reads only its own ``down/``; a cloud
worker reads every appliance's ``up/``, ``status`` and ``device/`` and writes every ``down/``.

Appliances and cloud workers are kept in two password files, one per broker listener: the appliances'
listener replaces each client id with the username (``use_username_as_clientid``), so no appliance can
take over another's session; the cloud's listener lets several workers share one credential.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import secrets
import shlex
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import peewee as pw

from cloud.clock import Clock, to_ms
from cloud.config import CloudSettings
from cloud.store import BaseModel
from ledger import topics

log = logging.getLogger(__name__)

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")  # the appliance's own rule for plant and appliance ids
PBKDF2_ITERATIONS = 101  # mosquitto_passwd's own; the passwords are 192-bit random, so no guessing to slow down
SALT_BYTES = 12
APPLIANCE, CLOUD = "appliance", "cloud"


class BrokerAuthError(Exception):
    pass


class BrokerUser(BaseModel):
    username = pw.CharField(primary_key=True)
    role = pw.CharField(max_length=16)  # appliance / cloud
    plant = pw.CharField(null=True)
    appliance = pw.CharField(null=True)
    password_hash = pw.CharField()  # Mosquitto's $7$ line, as it goes into the password file
    created_ms = pw.BigIntegerField()
    changed_ms = pw.BigIntegerField()


MODELS = (BrokerUser,)


@dataclass(frozen=True)
class Issued:
    """A credential just made: the only moment its password exists outside the broker's hash."""

    username: str
    password: str = ""  # empty: the credential existed and was kept
    new: bool = True

    def __repr__(self) -> str:  # never show the password in a log or a traceback
        return f"Issued(username={self.username!r}, password={'***' if self.password else ''!r}, new={self.new})"


# -- passwords ---------------------------------------------------------------------------------
def new_password() -> str:
    return secrets.token_urlsafe(24)  # 192 bits; no ':' or newline, which the password file cannot hold


def mosquitto_hash(password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    """``$7$<iterations>$<salt, base64>$<PBKDF2-HMAC-SHA512, 64 bytes, base64>``: Mosquitto 2's format."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def check_hash(password: str, hashed: str) -> bool:
    """Whether ``password`` matches a ``$7$`` hash (ours or mosquitto_passwd's)."""
    try:
        _, kind, iterations, salt, digest = hashed.split("$")
        if kind != "7":
            return False
        expected = base64.b64decode(digest, validate=True)
        actual = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), base64.b64decode(salt), int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(expected, actual)


# -- users -------------------------------------------------------------------------------------
def appliance_username(plant: str, appliance: str) -> str:
    """``plant.appliance``: ids are slugs without '.', so no two appliances (and no cloud user) share a name."""
    for what, value in (("plant", plant), ("appliance", appliance)):
        if not SLUG.match(value):
            raise BrokerAuthError(f"{what} id {value!r} is not lower-case letters, digits and '-'")
    return f"{plant}.{appliance}"


def cloud_username(name: str) -> str:
    if not SLUG.match(name):
        raise BrokerAuthError(f"cloud user name {name!r} is not lower-case letters, digits and '-'")
    return f"cloud-{name}"


def issue_appliance(plant: str, appliance: str, clock: Clock, *, new_password: bool = False) -> Issued:
    return _issue(appliance_username(plant, appliance), APPLIANCE, clock, new_password, plant, appliance)


def issue_cloud(name: str, clock: Clock, *, new_password: bool = False) -> Issued:
    return _issue(cloud_username(name), CLOUD, clock, new_password)


def _issue(
    username: str, role: str, clock: Clock, renew: bool, plant: str | None = None, appliance: str | None = None
) -> Issued:
    """Create the user, or keep it as it is unless ``renew``: registering twice never changes a password."""
    now = to_ms(clock.now())
    existing = BrokerUser.get_or_none(BrokerUser.username == username)
    if existing is not None and existing.role != role:
        raise BrokerAuthError(f"broker user {username} exists already as a {existing.role} user")
    if existing is not None and not renew:
        return Issued(username, new=False)
    password = new_password()
    hashed = mosquitto_hash(password)
    if existing is None:
        BrokerUser.create(
            username=username,
            role=role,
            plant=plant,
            appliance=appliance,
            password_hash=hashed,
            created_ms=now,
            changed_ms=now,
        )
    else:
        BrokerUser.update(password_hash=hashed, changed_ms=now).where(BrokerUser.username == username).execute()
    log.info("broker user %s: %s password", username, "new" if existing is None else "changed")
    return Issued(username, password, new=existing is None)


# -- the files Mosquitto reads -----------------------------------------------------------------
# Exactly the topics an appliance publishes (ledger/topics.py), one level for a terminal's name: Mosquitto keeps
# one retained message per topic, so a login allowed "up/#" could retain without bound under names of its own.
APPLIANCE_PUBLISH = ("up/batch", "up/live", "up/config", "status", "device/+")
APPLIANCE_READ = ("down/#",)
HEADER = (
    "# Written by 'punchproof cloud' (cloud/appliances/broker_auth.py) from the cloud database: edits here are lost.\n"
    "# Deny by default; each user may use only the topics under its name (ledger/topics.py).\n"
)


def acl_text(users: list[BrokerUser]) -> str:
    blocks = [HEADER]
    every = topics.base("+", "+")
    for user in sorted(users, key=lambda u: (u.role != CLOUD, u.username)):
        lines = [f"user {user.username}"]
        if user.role == CLOUD:
            lines += [f"topic read {every}/{rest}" for rest in APPLIANCE_PUBLISH]
            lines += [f"topic write {every}/{rest}" for rest in APPLIANCE_READ]
        else:
            own = topics.base(user.plant, user.appliance)
            lines += [f"topic write {own}/{rest}" for rest in APPLIANCE_PUBLISH]
            lines += [f"topic read {own}/{rest}" for rest in APPLIANCE_READ]
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


def password_text(users: list[BrokerUser], role: str) -> str:
    return "".join(
        f"{u.username}:{u.password_hash}\n" for u in sorted(users, key=lambda u: u.username) if u.role == role
    )


@dataclass(frozen=True)
class BrokerFiles:
    password_file: Path  # the appliances' listener
    cloud_password_file: Path  # the cloud workers' listener
    acl_file: Path

    @classmethod
    def from_settings(cls, settings: CloudSettings) -> BrokerFiles:
        missing = [
            f"broker.{key}"
            for key in ("password_file", "cloud_password_file", "acl_file")
            if not getattr(settings, f"broker_{key}")
        ]
        if missing:
            raise BrokerAuthError(
                f"{settings.source}: set {', '.join(missing)} (the files mosquitto.conf names; docs/broker-security.md)"
            )
        return cls(
            Path(settings.broker_password_file),
            Path(settings.broker_cloud_password_file),
            Path(settings.broker_acl_file),
        )


def write_files(files: BrokerFiles) -> int:
    """Write both password files and the ACL file from the database; return the number of users."""
    users = list(BrokerUser.select())
    atomic_write(files.password_file, password_text(users, APPLIANCE))
    atomic_write(files.cloud_password_file, password_text(users, CLOUD))
    atomic_write(files.acl_file, acl_text(users))
    return len(users)


def atomic_write(path: Path, text: str, mode: int = 0o640, *, keep_mode: bool = True) -> None:
    """Replace ``path`` whole (temp file, fsync, rename): Mosquitto never reads half a file.

    With ``keep_mode``, a file that exists keeps its mode, owner and group (e.g. root:mosquitto 0640)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        old = path.stat() if keep_mode else None
    except FileNotFoundError:
        old = None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode if old is None else old.st_mode & 0o7777)
        if old is not None:
            _same_owner(tmp, path, old)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _same_owner(tmp: str, path: Path, old: os.stat_result) -> None:
    """Give the new file the old one's group (Mosquitto reads it through that group), and owner as root."""
    root = os.geteuid() == 0
    if not root and os.stat(tmp).st_gid == old.st_gid:
        return
    try:
        os.chown(tmp, old.st_uid if root else -1, old.st_gid)
    except PermissionError as err:
        raise BrokerAuthError(
            f"{path} belongs to group {old.st_gid}, which this user cannot give the new file: make its directory "
            "setgid (chmod g+s) or run as a member of that group (docs/broker-security.md)"
        ) from err


def reload(settings: CloudSettings) -> str:
    """Run ``[broker] reload_command`` (SIGHUP makes Mosquitto read the password and ACL files again).

    Without one, return what the admin should run. At a reload Mosquitto 2.0 also disconnects a connected
    client whose password no longer holds (tests/cloud/test_broker_acl.py shows it)."""
    command = settings.broker_reload_command
    if not command:
        return "reload the broker to apply them: sudo systemctl reload mosquitto (it sends SIGHUP)"
    try:
        subprocess.run(shlex.split(command), check=True, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as err:
        detail = getattr(err, "stderr", "") or ""
        raise BrokerAuthError(f"broker.reload_command {command!r} failed: {err} {detail}".strip()) from err
    return f"reloaded the broker ({command})"
