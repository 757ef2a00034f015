"""The broker half of ``punchproof cloud register-appliance`` and ``punchproof cloud broker-credentials``.

Each makes (or keeps) a credential in the database, writes what must carry its password (the
registration file for the Pi, or the ingest workers' password file) inside the same transaction, then
rewrites Mosquitto's password and ACL files from the database and reloads the broker. A password is
never printed or logged: it goes only into a file of mode 0600.
"""

from __future__ import annotations

import sys
from pathlib import Path

from cloud.admin.config_edit import update_file
from cloud.appliances import broker_auth, registration
from cloud.appliances.broker_auth import BrokerAuthError, BrokerFiles
from cloud.clock import Clock
from cloud.config import CloudSettings
from cloud.store import database

STOLEN = (
    "Once the broker has reloaded, the old password logs in no more and a Pi connected with it is disconnected "
    "(Mosquitto 2.0 checks connected clients again at a reload). Revoke its signing key too: "
    "punchproof cloud revoke-key KID."
)


def configured(settings: CloudSettings) -> bool:
    return bool(settings.broker_password_file or settings.broker_acl_file)


def register_appliance(
    settings: CloudSettings, plant: str, appliance: str, clock: Clock, *, new_password: bool, output: Path
) -> int:
    try:
        files = BrokerFiles.from_settings(settings)
        with database.atomic():
            issued = broker_auth.issue_appliance(plant, appliance, clock, new_password=new_password)
            if issued.password:
                registration.write(output, registration.registration(settings, plant, appliance, issued))
        if issued.password:
            print(
                f"broker user {issued.username}: {'new' if issued.new else 'new password'}; wrote {output} "
                f"(it holds the password: copy it to the Pi, run 'punchproof appliance join {output.name}' there, "
                "then delete it)"
            )
            if not issued.new:
                print(STOLEN)
        else:
            print(
                f"broker user {issued.username} exists already: its password is unchanged, and only its hash is "
                "kept, so no registration file was written. Lost the file, or the Pi was stolen? Run again with "
                "--new-password."
            )
        return _apply(settings, files)
    except (BrokerAuthError, OSError) as err:
        print(f"no broker credential: {err}", file=sys.stderr)
        return 1


def cloud_credentials(settings: CloudSettings, name: str, clock: Clock, *, new_password: bool) -> int:
    """The ingest workers' login: its password goes into a 0600 file that ``[mqtt] password_file`` names."""
    config = Path(settings.source)
    try:
        files = BrokerFiles.from_settings(settings)
        with database.atomic():
            issued = broker_auth.issue_cloud(name, clock, new_password=new_password)
            secret = Path(settings.state_dir) / f"broker-{issued.username}.password"
            if issued.password:
                broker_auth.atomic_write(secret, issued.password + "\n", mode=0o600, keep_mode=False)
                update_file(config, "mqtt", {"username": issued.username, "password": "", "password_file": str(secret)})
        if issued.password:
            print(f"broker user {issued.username}: wrote its password to {secret}; [mqtt] of {config} now uses it")
            print("restart the ingest workers to log in with it (sudo systemctl restart 'punchproof-ingest@*')")
        elif settings.mqtt_username != issued.username:
            print(
                f"broker user {issued.username} exists already with another password file; [mqtt] of {config} "
                f"does not use it. Set [mqtt] username = {issued.username!r} and password_file, or run again with "
                "--new-password.",
                file=sys.stderr,
            )
        else:
            print(f"broker user {issued.username} exists already; password unchanged")
        return _apply(settings, files)
    except (BrokerAuthError, OSError, ValueError) as err:
        print(f"no broker credential: {err}", file=sys.stderr)
        return 1


def _apply(settings: CloudSettings, files: BrokerFiles) -> int:
    users = broker_auth.write_files(files)
    print(f"wrote {files.password_file}, {files.cloud_password_file} and {files.acl_file} ({users} broker users)")
    print(broker_auth.reload(settings))
    return 0
