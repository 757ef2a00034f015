"""``punchproof demo``: the whole system on one machine, on embedded defaults.

An emulated ZK terminal with a demo roster punches every few seconds; the appliance reads it,
signs and stores each punch and syncs over a local Mosquitto to the cloud, which verifies and
stores them. Both sets of pages run under gunicorn. The cloud's witness log is stamped by the
demo's own RFC 3161 timestamp authority (``punchproof.demo_tsa``, on the ``openssl`` command line),
so the demo's evidence bundles carry RFC 3161 time as a real deployment's do; its name says it is
the demo's own, not a third party. Ctrl-C stops everything.
"""

from __future__ import annotations

import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from punchproof.broker import Mosquitto, wait_for_port
from punchproof.demo_tsa import LocalTsa

PLANT, APPLIANCE = "demo-plant", "pi-01"
MARKER = ".punchproof-demo"


@dataclass(frozen=True)
class DemoPorts:
    zk: int = 4370
    mqtt: int = 18830
    appliance_web: int = 8080
    cloud_web: int = 8000


class Demo:
    def __init__(self, directory: str | Path, ports: DemoPorts, *, punch_every: float = 2.0) -> None:
        self.dir = Path(directory).resolve()
        self.ports = ports
        self.punch_every = punch_every
        self.broker: Mosquitto | None = None
        self.tsa: LocalTsa | None = None
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = threading.Event()

    def run(self) -> int:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stopping.set())
        try:
            logins = self.prepare()
            self.start_processes()
            self.wait_until_up()
            self.banner(logins)
            return self.supervise()
        finally:
            self.shutdown()

    # -- set-up ------------------------------------------------------------------------------
    def prepare(self) -> dict[str, tuple[str, str]]:
        if self.dir.exists():
            if not (self.dir / MARKER).exists():
                raise SystemExit(f"{self.dir} exists and is not a demo directory; choose another --dir")
            shutil.rmtree(self.dir)
        (self.dir / "logs").mkdir(parents=True)
        (self.dir / MARKER).touch()
        self.broker = Mosquitto(self.dir / "broker", self.ports.mqtt).start()
        self.tsa = LocalTsa(self.dir / "tsa").start()
        cloud_pw, manager_pw = secrets.token_urlsafe(9), secrets.token_urlsafe(9)
        self.cli(
            "cloud",
            "init",
            "-o",
            self.cloud_conf,
            "--state-dir",
            self.dir / "cloud",
            "--mqtt-port",
            self.ports.mqtt,
            "--web-bind",
            f"127.0.0.1:{self.ports.cloud_web}",
            "--tsa-url",
            self.tsa.url,
            "--tsa-ca-file",
            self.tsa.ca_path,
        )
        self.cli(
            "appliance",
            "init",
            "-o",
            self.appliance_conf,
            "--plant",
            PLANT,
            "--plant-name",
            "演示工厂（东莞）",
            "--appliance",
            APPLIANCE,
            "--state-dir",
            self.dir / "appliance",
            "--mqtt-port",
            self.ports.mqtt,
            "--web-bind",
            f"127.0.0.1:{self.ports.appliance_web}",
            "--cloud-key",
            self.dir / "cloud" / "cloud-witness.pub",
            "--terminal",
            f"gate-1=127.0.0.1:{self.ports.zk}",
            "--poll-seconds",
            "2",
            "--identity",
            self.dir / "identity.json",
        )
        self.cli("cloud", "register-appliance", "-c", self.cloud_conf, self.dir / "identity.json")
        self.cli("cloud", "create-user", "-c", self.cloud_conf, "hr", "--password-stdin", stdin=cloud_pw)
        self.cli(
            "appliance",
            "create-user",
            "-c",
            self.appliance_conf,
            "manager",
            "--role",
            "plant_manager",
            "--password-stdin",
            stdin=manager_pw,
        )
        return {"cloud": ("hr", cloud_pw), "appliance": ("manager", manager_pw)}

    @property
    def cloud_conf(self) -> Path:
        return self.dir / "cloud.toml"

    @property
    def appliance_conf(self) -> Path:
        return self.dir / "appliance.toml"

    def cli(self, *args: object, stdin: str | None = None) -> None:
        command = [sys.executable, "-m", "punchproof", *map(str, args)]
        result = subprocess.run(
            command, input=(stdin + "\n") if stdin else None, text=True, capture_output=True, check=False
        )
        if result.returncode != 0:
            raise SystemExit(f"demo set-up failed at {' '.join(map(str, args[:2]))}:\n{result.stderr}")

    def start_processes(self) -> None:
        self.spawn(
            "terminal",
            "emulate",
            "zk",
            "--port",
            self.ports.zk,
            "--serial",
            "DEMO-ZK-0001",
            "--roster",
            "30",
            "--punch-every",
            self.punch_every,
        )
        self.spawn("cloud-ingest", "cloud", "ingest", "-c", self.cloud_conf)
        self.spawn("cloud-web", "cloud", "web", "-c", self.cloud_conf)
        self.spawn("appliance", "appliance", "run", "-c", self.appliance_conf)
        self.spawn("appliance-web", "appliance", "web", "-c", self.appliance_conf)

    def spawn(self, name: str, *args: object) -> None:
        log = (self.dir / "logs" / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "punchproof", *map(str, args)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the demo only; it stops the children in order
        )

    def wait_until_up(self, timeout: float = 30.0) -> None:
        if not wait_for_port("127.0.0.1", self.ports.zk, timeout):
            raise SystemExit(self.failure("terminal"))
        for name, port in (("cloud-web", self.ports.cloud_web), ("appliance-web", self.ports.appliance_web)):
            deadline = time.monotonic() + timeout
            while not _http_ok(f"http://127.0.0.1:{port}/login"):
                if self.processes[name].poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(self.failure(name))
                time.sleep(0.1)

    def banner(self, logins: dict[str, tuple[str, str]]) -> None:
        cloud_user, cloud_pw = logins["cloud"]
        plant_user, plant_pw = logins["appliance"]
        print(
            f"""
Punchproof demo is running (working directory {self.dir}).

  Head office (cloud)       http://127.0.0.1:{self.ports.cloud_web}/    login: {cloud_user} / {cloud_pw}
  Plant manager (appliance) http://127.0.0.1:{self.ports.appliance_web}/    login: {plant_user} / {plant_pw}
  ZK terminal (emulated)    127.0.0.1:{self.ports.zk}, 30 workers, a punch every {self.punch_every:g} s
  MQTT broker (Mosquitto)   127.0.0.1:{self.ports.mqtt}
  Timestamp authority       {self.tsa.url if self.tsa else "none"} (the demo's own, not a third party)
  Logs                      {self.dir / "logs"}

Punches appear on the plant page within seconds and on the head-office page once the cloud
has verified their signatures. Press Ctrl-C to stop.
""",
            flush=True,
        )

    # -- running -----------------------------------------------------------------------------
    def supervise(self) -> int:
        while not self.stopping.wait(0.5):
            for name, process in self.processes.items():
                if process.poll() is not None:
                    print(self.failure(name), file=sys.stderr)
                    return 1
        print("stopping ...", flush=True)
        return 0

    def failure(self, name: str) -> str:
        log = self.dir / "logs" / f"{name}.log"
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        return f"{name} stopped unexpectedly; the end of {log}:\n{tail}"

    def shutdown(self) -> None:
        for name in reversed(list(self.processes)):
            process = self.processes[name]
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.broker is not None:
            self.broker.stop()
        if self.tsa is not None:
            self.tsa.stop()
        if self.processes:
            print("all stopped.", flush=True)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - our own loopback URL
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False
