"""A throwaway PostgreSQL server: initdb in a temporary directory, on a free port."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from punchproof.broker import free_port


class PostgresUnavailable(RuntimeError):
    pass


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name) or ""]
    if not found[-1]:
        raise PostgresUnavailable(
            f"{name} not found: install PostgreSQL ('apt-get install postgresql' or scripts/setup)"
        )
    return found[-1]


class PostgresServer:
    """``durable``: fsync on, as in production (benchmarks); tests run without it, for speed."""

    def __init__(self, *, durable: bool = False) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="pp-pg-"))
        self.port = 0
        self.durable = durable
        self._user: list[str] = []

    def start(self) -> PostgresServer:
        if os.geteuid() == 0:  # initdb refuses to run as root
            try:
                account = pwd.getpwnam("postgres")
            except KeyError as err:
                raise PostgresUnavailable("running as root needs the 'postgres' system user") from err
            os.chown(self.dir, account.pw_uid, account.pw_gid)
            self._user = ["runuser", "-u", "postgres", "--"]
        self.port = free_port()
        data = self.dir / "data"
        self._run(_bin("initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        fsync = "on" if self.durable else "off"
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync={fsync} -c max_connections=200"
        self._run(_bin("pg_ctl"), "-D", str(data), "-o", options, "-l", str(self.dir / "server.log"), "-w", "start")
        return self

    def _run(self, *command: str) -> None:
        result = subprocess.run([*self._user, *command], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise PostgresUnavailable(f"{' '.join(command[:2])} failed:\n{result.stdout}\n{result.stderr}")

    def create_database(self, name: str) -> str:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    @property
    def pid(self) -> int:
        """The postmaster's process id (its backends are its children)."""
        return int((self.dir / "data" / "postmaster.pid").read_text().split()[0])

    def stop(self) -> None:
        data = self.dir / "data"
        if data.exists():
            subprocess.run(
                [*self._user, _bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                capture_output=True,
                check=False,
            )
        shutil.rmtree(self.dir, ignore_errors=True)
