"""The whole chain as real processes, started through the ``punchproof`` command like an installer would.

With ``secure``, the broker is secured as docs/broker-security.md says (TLS, one login per appliance and
for the cloud workers, the ACL) and the logins are made by the real commands: ``cloud broker-credentials``,
``cloud register-appliance`` (which writes the registration file) and ``appliance join``.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from punchproof.broker import Mosquitto, free_port

PLANT, APPLIANCE = "e2e-plant", "pi-01"


def cli(*args: object, stdin: str | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "punchproof", *map(str, args)], capture_output=True, text=True, input=stdin, check=False
    )
    assert result.returncode == 0, f"punchproof {' '.join(map(str, args))} failed:\n{result.stderr}"
    return result.stdout


@dataclass(frozen=True)
class Secured:
    broker: Mosquitto  # started with ``security``; its files may start empty
    cafile: Path  # the CA that issued the broker's certificate (for the name "localhost")


class System:
    def __init__(
        self, root: Path, broker_port: int, terminal: tuple[str, int], *, secure: Secured | None = None
    ) -> None:
        self.root = root
        self.broker_port = broker_port
        self.terminal = terminal
        self.secure = secure
        self.cloud_conf = root / "cloud.toml"
        self.appliance_conf = root / "appliance.toml"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}
        self.database_url = ""

    def configure(
        self, *, register: bool = True, ack_timeout_s: float | None = None, database_url: str = "", shared: bool = False
    ) -> System:
        """``database_url``: the cloud's database (default SQLite); ``shared``: workers share the subscription."""
        host, port = self.terminal
        self.database_url = database_url
        extra = ("--database-url", database_url) if database_url else ()
        cloud_port = self.broker_port if self.secure is None else self.secure.broker.cloud_port
        cli(
            "cloud",
            "init",
            "-o",
            self.cloud_conf,
            "--state-dir",
            self.root / "cloud",
            "--mqtt-port",
            cloud_port,
            *extra,
        )
        if shared:
            self.cloud_conf.write_text(self.cloud_conf.read_text().replace("shared = false", "shared = true"))
        if self.secure is not None:
            self._secure_cloud(self.secure)
        cli(
            "appliance",
            "init",
            "-o",
            self.appliance_conf,
            "--plant",
            PLANT,
            "--appliance",
            APPLIANCE,
            "--state-dir",
            self.root / "appliance",
            "--mqtt-port",
            self.broker_port,
            "--terminal",
            f"gate-1={host}:{port}",
            "--poll-seconds",
            "0.3",
            "--identity",
            self.root / "identity.json",
            "--cloud-key",
            self.root / "cloud" / "cloud-witness.pub",
        )
        if ack_timeout_s is not None:
            text = self.appliance_conf.read_text().replace("[mqtt]\n", f"[mqtt]\nack_timeout_s = {ack_timeout_s}\n")
            self.appliance_conf.write_text(text)
        if register:
            self.register()
        return self

    def register(self, *extra: str) -> str:
        out = cli("cloud", "register-appliance", "-c", self.cloud_conf, self.root / "identity.json", *extra)
        if self.secure is not None and self.registration_file.exists():
            out += cli("appliance", "join", "-c", self.appliance_conf, self.registration_file)
        return out

    @property
    def registration_file(self) -> Path:
        return self.root / f"registration-{PLANT}-{APPLIANCE}.json"

    def _secure_cloud(self, secure: Secured) -> None:
        """What head office's admin writes into cloud.toml by hand (docs/broker-security.md), then the logins."""
        from cloud.admin.config_edit import update_file

        security = secure.broker.security
        assert security is not None, "start the broker with security"
        update_file(self.cloud_conf, "mqtt", {"host": "localhost", "tls": True, "ca_file": str(secure.cafile)})
        broker = {
            "host": "localhost",
            "port": secure.broker.port,
            "ca_file": str(secure.cafile),
            "password_file": str(security.password_file),
            "cloud_password_file": str(security.cloud_password_file),
            "acl_file": str(security.acl_file),
            "reload_command": f"kill -HUP {secure.broker.pid}",
        }
        update_file(self.cloud_conf, "broker", broker)
        cli("cloud", "broker-credentials", "-c", self.cloud_conf)

    def recording_since(self, at: datetime) -> None:
        """Before the appliance starts: it has been recording its terminal since ``at`` (a Pi installed
        then), so that shifts begun before this start are covered and can be absences."""
        path = self.root / "appliance" / "appliance.sqlite3"
        with closing(sqlite3.connect(path)) as conn, conn:
            conn.execute(
                "INSERT INTO terminal_health (name, serial, cursor, available, last_error, first_read_ms) "
                "VALUES ('gate-1', '', 0, 0, '', ?) "
                "ON CONFLICT (name) DO UPDATE SET first_read_ms = excluded.first_read_ms",
                (int(at.timestamp() * 1000),),
            )

    def spawn(
        self, name: str, *args: object, env: dict[str, str] | None = None, python_module: bool = True
    ) -> subprocess.Popen[bytes]:
        """``python -m punchproof ARGS`` (or, with ``python_module=False``, ``python ARGS``) logging to NAME.log."""
        log = (self.root / f"{name}.log").open("ab")
        command = [sys.executable, "-m", "punchproof"] if python_module else [sys.executable]
        process = subprocess.Popen(
            [*command, *map(str, args)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        self.processes[name] = process
        return process

    def start_appliance(self, *, failpoints: str = "") -> subprocess.Popen[bytes]:
        """``failpoints``: e.g. "sync.after_puback=1" kills the process there (ledger.failpoints)."""
        env = {"PUNCHPROOF_FAILPOINTS": failpoints} if failpoints else None
        return self.spawn("appliance", "appliance", "run", "-c", self.appliance_conf, env=env)

    def start_ingest(
        self, name: str = "ingest", *, failpoints: str = "", worker_id: str = ""
    ) -> subprocess.Popen[bytes]:
        env = {"PUNCHPROOF_FAILPOINTS": failpoints} if failpoints else None
        extra = ("--worker-id", worker_id) if worker_id else ()
        return self.spawn(name, "cloud", "ingest", "-c", self.cloud_conf, *extra, env=env)

    def reap(self, name: str, timeout: float = 30) -> int:
        """Wait for a process that is meant to die (a failpoint) and forget it; return its exit code."""
        return self.processes.pop(name).wait(timeout=timeout)

    def start_web(self, side: str) -> int:
        port = free_port()
        conf = self.cloud_conf if side == "cloud" else self.appliance_conf
        self.spawn(f"{side}-web", side, "web", "-c", conf, "--bind", f"127.0.0.1:{port}")
        self.ports[side] = port
        return port

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, name: str, sig: signal.Signals = signal.SIGTERM) -> int:
        process = self.processes.pop(name)
        process.send_signal(sig)
        return process.wait(timeout=60)  # a loaded 2-core CI machine: shutting down took over 30 s

    def stop_all(self) -> dict[str, int]:
        return {name: self.stop(name) for name in list(self.processes)}

    def stop_all_cleanly(self) -> None:
        """Stop every process; each must exit 0 (their logs are shown when one does not)."""
        codes = self.stop_all()
        assert all(code == 0 for code in codes.values()), f"unclean exits {codes}:\n" + "\n".join(
            self.log(n) for n in codes
        )

    # -- reading what the processes wrote (read-only) ----------------------------------------
    def cloud_rows(self, sql: str) -> list[tuple]:
        if self.database_url.startswith("postgresql"):
            import psycopg2

            with psycopg2.connect(self.database_url) as conn, conn.cursor() as cursor:
                cursor.execute(sql)
                rows = cursor.fetchall()
            conn.close()
            return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in rows]
        with sqlite3.connect(f"file:{self.root / 'cloud' / 'cloud.sqlite3'}?mode=ro", uri=True) as conn:
            return conn.execute(sql).fetchall()

    def cloud_punches(self) -> list[tuple]:
        """(employee, device time, seq) of every punch the cloud stored, in log order."""
        return self.cloud_rows("SELECT employee, device_time, seq FROM punch ORDER BY seq")

    def acked_seq(self) -> int:
        """How far the cloud has acknowledged the appliance's log, as the appliance recorded it."""
        return self.appliance_rows("SELECT acked_seq FROM sync_state")[0][0]

    def appliance_rows(self, sql: str) -> list[tuple]:
        with sqlite3.connect(f"file:{self.root / 'appliance' / 'appliance.sqlite3'}?mode=ro", uri=True) as conn:
            return conn.execute(sql).fetchall()
