"""A Mosquitto broker of our own, for the demo and the tests: real broker, throwaway config.

Anonymous on one plain listener by default. With ``security``, the broker is set up as
docs/broker-security.md sets up head office's: TLS, logins and the ACL that cloud.appliances.broker_auth writes,
on two listeners (appliances, cloud workers); ``secure_listeners`` is the text of both, for the doc too.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/bin/mosquitto")


class BrokerError(RuntimeError):
    pass


def find_mosquitto() -> str:
    found = shutil.which("mosquitto") or next((p for p in MOSQUITTO_PATHS if os.path.exists(p)), None)
    if found is None:
        raise BrokerError("mosquitto is not installed: run 'sudo apt-get install mosquitto' (or scripts/setup)")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.02)
    return False


@dataclass(frozen=True)
class Security:
    certfile: Path  # the broker's certificate (PEM, with any intermediates) and its key
    keyfile: Path
    password_file: Path  # the appliances' logins (cloud.appliances.broker_auth writes all three files)
    cloud_password_file: Path  # the cloud workers' logins
    acl_file: Path


def secure_listeners(security: Security, *, host: str, port: int, cloud_port: int) -> str:
    """The listeners of a secured broker: appliances on ``port``, cloud workers on ``cloud_port``.

    On the appliances' listener each client id is replaced by the username, so no appliance can take over
    (and empty) another's session; the cloud's listener lets several ingest workers share one login."""

    def listener(listen_port: int, passwords: Path, comment: str, extra: tuple[str, ...]) -> list[str]:
        return [
            comment,
            f"listener {listen_port} {host}",
            f"certfile {security.certfile}",
            f"keyfile {security.keyfile}",
            "tls_version tlsv1.2",
            "allow_anonymous false",
            f"password_file {passwords}",
            f"acl_file {security.acl_file}",
            *extra,
        ]

    lines = [
        "per_listener_settings true",
        "# no message of Punchproof's exceeds 512 KiB: larger ones are refused at the door",
        f"max_packet_size {MAX_PACKET}",
        "",
        *listener(port, security.password_file, "# appliances", ("use_username_as_clientid true",)),
        "",
        *listener(cloud_port, security.cloud_password_file, "# cloud ingest workers", ()),
    ]
    return "\n".join(lines) + "\n"


MAX_PACKET = 1024 * 1024  # ledger.messages.MAX_MESSAGE_BYTES is 512 KiB


class Mosquitto:
    """``start()`` runs mosquitto on ``port`` (0: a free one); ``kill()`` and ``restart()`` for fault tests.

    With ``security``, ``port`` is the appliances' TLS listener and ``cloud_port`` the cloud workers'."""

    def __init__(
        self,
        workdir: Path,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        extra_config: str = "",
        security: Security | None = None,
        cloud_port: int = 0,
    ) -> None:
        self.workdir = Path(workdir)
        self.host = host
        self.port = port
        self.cloud_port = cloud_port
        self.extra_config = extra_config
        self.security = security
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    def config(self) -> str:
        if self.security is None:
            listeners = [f"listener {self.port} {self.host}", "allow_anonymous true"]
        else:
            listeners = [secure_listeners(self.security, host=self.host, port=self.port, cloud_port=self.cloud_port)]
        lines = [
            *listeners,
            "persistence true",
            f"persistence_location {self.workdir}/",
            "autosave_interval 1",
            "set_tcp_nodelay true",
            "max_queued_messages 100000",
            *([f"max_packet_size {MAX_PACKET}"] if self.security is None else []),  # secure: in its listeners
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if os.geteuid() == 0:
            lines.append(f"user {getpass.getuser()}")  # as root, mosquitto would drop to its own user
        return "\n".join(lines) + "\n" + self.extra_config

    def start(self, timeout: float = 10.0) -> Mosquitto:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port()
        if self.security is not None and not self.cloud_port:
            self.cloud_port = free_port()
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(self.config())
        self.process = subprocess.Popen(
            [find_mosquitto(), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        ports = [self.port] if self.security is None else [self.port, self.cloud_port]
        for port in ports:
            if not wait_for_port(self.host, port, timeout):
                self.kill()
                log = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
                raise BrokerError(f"mosquitto did not listen on {self.host}:{port} within {timeout}s\n{log}")
        return self

    def reload(self) -> None:
        """SIGHUP: Mosquitto reads its password and ACL files again (and drops clients whose login is gone)."""
        if self.process is None or self.process.poll() is not None:
            raise BrokerError("mosquitto is not running")
        self.process.send_signal(signal.SIGHUP)

    @property
    def pid(self) -> int:
        if self.process is None:
            raise BrokerError("mosquitto is not running")
        return self.process.pid

    def stop(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """Like a crash or a power cut: no chance to save anything."""
        self._signal(signal.SIGKILL)

    def restart(self) -> Mosquitto:
        self.stop()
        return self.start()

    def _signal(self, sig: signal.Signals) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
