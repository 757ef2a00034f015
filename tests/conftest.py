"""Fixtures every test may use: a real Mosquitto, a real PostgreSQL, ZK terminals, a frozen clock, a clean
Debian root.

scripts/test runs the suite on two workers (pytest-xdist, ``--dist loadfile``). What a session fixture makes is
then made once per worker (a PostgreSQL server each, on its own port and directory), except the debootstrap root,
which the workers share.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from firmware_bridge.zk.emulator import TerminalState, ZKEmulator
from punchproof.broker import Mosquitto
from tests.harness import debian_root as debian
from tests.harness.clock import FrozenClock
from tests.harness.postgres import PostgresServer
from tests.harness.strict import pytest_runtest_makereport  # noqa: F401  (PUNCHPROOF_STRICT=1: a skip fails)

PLANT_TZ = ZoneInfo("Asia/Shanghai")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On scripts/test's workers (``--dist loadfile``: each file's tests on one worker, so its module fixtures are
    made once), the e2e files are handed out first: they take most of the time, and a long one started last
    would leave the other worker idle."""
    if hasattr(config, "workerinput"):  # a pytest-xdist worker; every worker sorts alike
        items.sort(key=lambda item: 0 if item.get_closest_marker("e2e") else 1)  # stable


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 3, 2, 0, 0, tzinfo=UTC))  # 08:00 in Shanghai


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A real Mosquitto on a free port; ``broker.kill()`` and ``broker.restart()`` inject faults."""
    server = Mosquitto(tmp_path / "broker").start()
    yield server
    server.kill()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> str:
    """A fresh, empty database on the session's PostgreSQL server."""
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[-50:]
    return postgres_server.create_database(f"{name}_{id(request)}")


@pytest.fixture(params=["sqlite", "postgresql"])
def cloud_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/cloud.sqlite3"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def terminal_state() -> TerminalState:
    state = TerminalState(serial="TEST-ZK-01", tz=PLANT_TZ, now=lambda: datetime.now(UTC))
    state.add_user("1001", "张三")
    state.add_user("1002", "李四")
    return state


@pytest.fixture
def zk_terminal(terminal_state: TerminalState) -> Iterator[ZKEmulator]:
    with ZKEmulator(terminal_state, port=0) as emulator:
        yield emulator


@pytest.fixture(scope="session")
def debian_base_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A minbase Debian 12 made by debootstrap once per session; tests use ``debian_root``, a copy of it.

    Under pytest-xdist the workers share one: the first to need it builds it (30 s) while the others wait, and
    the last to finish removes it."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the directory every worker's own temporary directory is in
    root, users = base / "debian-base", base / "debian-base.users"
    with debian.locked(base / "debian-base.lock"):
        if not users.exists():
            shutil.rmtree(root, ignore_errors=True)  # half made by a worker that failed
            debian.build(root)
            users.write_text("0")
        users.write_text(str(int(users.read_text()) + 1))
    yield root
    with debian.locked(base / "debian-base.lock"):
        left = int(users.read_text()) - 1
        users.write_text(str(left))
        if left == 0:
            shutil.rmtree(root, ignore_errors=True)
            users.unlink()


@pytest.fixture
def debian_root(debian_base_root: Path, tmp_path: Path) -> Iterator[Path]:
    """This test's own copy of the clean Debian root, with /proc mounted."""
    root = debian.copy_of(debian_base_root, tmp_path / "root")
    yield root
    debian.remove(root)
