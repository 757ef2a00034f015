"""``punchproof appliance join FILE``: take head office's registration file into this appliance's config.

The file (``punchproof cloud register-appliance`` wrote it) carries the broker's address, the CA
certificate to check the broker with, this appliance's broker login and the cloud's witness key. The
password goes into its own file of mode 0600 beside the configuration, never onto a command line or
into the configuration itself; ``[mqtt]`` is updated in place and checked before it is written.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from cryptography import x509

from appliance.config import ConfigError, Settings
from appliance.sync.config_edit import atomic_write
from ledger import Malformed, VerifyKey
from opskit.config_edit import set_keys

FORMAT = "punchproof-registration/1"
PASSWORD_FILE = "broker.password"
CA_FILE = "broker-ca.pem"


class JoinError(Exception):
    pass


def join(settings: Settings, registration: dict[str, Any]) -> str:
    """Write the broker login and CA beside the config and point ``[mqtt]`` at them; say what was done."""
    broker = _check(settings, registration)
    config = Path(settings.source)
    here = config.parent
    _cloud_key(settings, registration["cloud_key"])
    values: dict[str, str | int | bool] = {
        "host": broker["host"],
        "port": broker["port"],
        "tls": broker["tls"],
        "username": broker["username"],
        "password": "",
        "password_file": str((here / PASSWORD_FILE).resolve()),
        "ca_file": "",
    }
    if broker["ca_certificate"]:
        ca = broker["ca_certificate"].encode("ascii")
        try:
            x509.load_pem_x509_certificates(ca)
        except ValueError as err:
            raise JoinError(f"the registration's CA certificate is unreadable: {err}") from err
        atomic_write(here / CA_FILE, ca, 0o644, like=config)
        values["ca_file"] = str((here / CA_FILE).resolve())
    try:
        text = set_keys(config.read_text(encoding="utf-8"), "mqtt", values)
        Settings.from_dict(tomllib.loads(text), source=str(config))  # refuse to write a bad file
    except (ValueError, ConfigError) as err:
        raise JoinError(f"{config} could not be updated: {err}") from err
    atomic_write(here / PASSWORD_FILE, (broker["password"] + "\n").encode("utf-8"), 0o600, like=config)
    atomic_write(config, text.encode("utf-8"), config.stat().st_mode & 0o7777, like=config)
    scheme = "mqtts" if broker["tls"] else "mqtt"
    return f"joined: {scheme}://{broker['host']}:{broker['port']} as {broker['username']}; password in {PASSWORD_FILE}"


def _check(settings: Settings, registration: dict[str, Any]) -> dict[str, Any]:
    if registration.get("format") != FORMAT:
        raise JoinError(f"not a registration file (format {registration.get('format')!r}, expected {FORMAT!r})")
    ours = (settings.plant.id, settings.appliance.id)
    theirs = (registration.get("plant"), registration.get("appliance"))
    if theirs != ours:
        raise JoinError(
            f"this file is for {theirs[0]}/{theirs[1]}, but this appliance is {ours[0]}/{ours[1]} "
            "/ 注册文件不属于本设备"
        )
    broker = registration.get("broker")
    kinds = {"host": str, "port": int, "tls": bool, "ca_certificate": str, "username": str, "password": str}
    if not isinstance(broker, dict) or any(not isinstance(broker.get(k), t) for k, t in kinds.items()):
        raise JoinError(f"the registration's broker entry must hold {', '.join(kinds)}")
    if not broker["password"] or "\n" in broker["password"]:
        raise JoinError("the registration's broker password is empty or malformed")
    if not isinstance(registration.get("cloud_key"), str):
        raise JoinError("the registration lacks the cloud's witness key")
    return broker


def _cloud_key(settings: Settings, pem: str) -> None:
    """The cloud key the config names must be the registration's; write it there if it is missing."""
    try:
        theirs = VerifyKey.from_pem(pem)
    except Malformed as err:
        raise JoinError(f"the registration's cloud key is unusable: {err}") from err
    path = Path(settings.mqtt.cloud_key_file)
    if not path.exists():
        atomic_write(path, theirs.pem().encode("ascii"), 0o644, like=Path(settings.source))
        return
    ours = settings.cloud_key()
    if ours.kid != theirs.kid:
        raise JoinError(
            f"the registration comes from another cloud: its witness key is {theirs.kid}, {path} holds {ours.kid}"
        )
