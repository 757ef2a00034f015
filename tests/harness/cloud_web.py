"""``punchproof cloud web`` (gunicorn) as its own process on a SQLite database, for the dashboard's browser
test and its load bench: the configuration it needs, the process, and the wait until it serves."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from punchproof.broker import free_port
from tests.harness.http import WebClient
from tests.harness.wait import wait_until


def write_conf(path: Path, *, database: Path, state_dir: Path, workers: int) -> Path:
    path.write_text(
        f'[database]\nurl = "sqlite:///{database}"\n[cloud]\nstate_dir = "{state_dir}"\n[web]\nworkers = {workers}\n',
        encoding="utf-8",
    )
    return path


def start(conf: Path, log: Path, *, timeout: float = 30) -> tuple[subprocess.Popen[bytes], str]:
    """The web process and its base URL, once it serves the login page; its output goes to ``log``."""
    port = free_port()
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "punchproof", "cloud", "web", "-c", str(conf), "--bind", f"127.0.0.1:{port}"],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: WebClient(base).get("/login")[0] == 200, timeout=timeout, message="gunicorn to serve")
    return process, base
