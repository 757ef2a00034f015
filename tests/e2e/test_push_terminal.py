"""Push terminals and serial readers end to end, every part a real process started by the CLI:

``punchproof emulate adms`` (an ADMS terminal pushing over HTTP) and ``punchproof emulate card``
(a card reader on socket://) -> ``punchproof appliance run`` (receiver, reader, signed log) ->
MQTT -> ``punchproof cloud ingest``. Each punch reaches the cloud once, across an appliance restart.
"""

from __future__ import annotations

import re

import pytest

from ledger import parse
from punchproof.broker import free_port
from tests.harness.system import System
from tests.harness.wait import wait_until

pytestmark = pytest.mark.e2e

SN = "E2E-ADMS-01"
PUNCHED = re.compile(r"(\d+) punched at (\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)")


@pytest.fixture
def system(tmp_path, broker, zk_terminal):
    chain = System(tmp_path, broker.port, zk_terminal.address).configure()
    yield chain
    chain.stop_all_cleanly()


def add_push_terminal_and_card_reader(system: System, push_port: int, card_port: int) -> None:
    (system.root / "cards.csv").write_text("卡号,工号\n" + "".join(f"{10001 + i},C{i + 1}\n" for i in range(4)))
    with system.appliance_conf.open("a", encoding="utf-8") as conf:
        conf.write(
            f'\n[push]\nhost = "127.0.0.1"\nport = {push_port}\n'
            f'\n[[terminals]]\nname = "east-gate"\nkind = "adms"\nserial = "{SN}"\n'
            f'\n[[terminals]]\nname = "canteen"\nkind = "card"\nurl = "socket://127.0.0.1:{card_port}"\n'
            'cards_file = "cards.csv"\nrepeat_seconds = 0\n'
        )


def pushed(system: System) -> set[tuple[str, str]]:
    """The punches the emulated terminal says it made (from its log)."""
    return {(pin, f"{day}T{time}") for pin, day, time in PUNCHED.findall(system.log("adms"))}


def cloud_punches(system: System, sn: str) -> list[tuple[str, str]]:
    return system.cloud_rows(f"SELECT employee, device_time FROM punch WHERE terminal_sn = '{sn}' ORDER BY seq")


def test_push_terminal_and_card_reader_punches_reach_the_cloud_once_across_an_appliance_restart(system):
    push_port, card_port = free_port(), free_port()
    add_push_terminal_and_card_reader(system, push_port, card_port)
    system.start_ingest()
    system.spawn("card", "emulate", "card", "--listen", f"127.0.0.1:{card_port}", "--every", "0.3", "--cards", "5")
    system.start_appliance()
    system.spawn(
        "adms", "emulate", "adms", "--server", f"127.0.0.1:{push_port}", "--serial", SN,
        "--punch-every", "0.3", "--poll-every", "0.2",
    )  # fmt: skip
    before = wait_until(lambda: len(pushed(system)) >= 3 and pushed(system), timeout=20, message="punches made")
    wait_until(lambda: before <= set(cloud_punches(system, SN)), timeout=30, message="the pushed punches in the cloud")
    assert system.stop("appliance") == 0
    system.start_appliance()  # the terminal keeps punching and pushing while the appliance restarts
    after = wait_until(lambda: len(pushed(system)) >= len(before) + 3 and pushed(system), timeout=20)
    rows = wait_until(
        lambda: after <= set(cloud_punches(system, SN)) and cloud_punches(system, SN),
        timeout=30,
        message="the punches made across the restart in the cloud",
    )
    assert rows and "will try again" in system.log("adms"), "the terminal kept punches while the appliance was down"
    keyed = system.cloud_rows(f"SELECT employee, device_time, state FROM punch WHERE terminal_sn = '{SN}'")
    assert len(keyed) == len(set(keyed)), "no punch twice (one worker may press in and out within a second)"
    cards = wait_until(lambda: cloud_punches(system, "canteen"), timeout=30, message="a card punch in the cloud")
    assert {employee for employee, _ in cards} <= {"C1", "C2", "C3", "C4"}
    unknown = wait_until(
        lambda: [r for r in incidents(system) if r["kind"] == "unknown_card"], timeout=30, message="card 10005"
    )
    assert unknown[0]["term"]["card"] == "10005"
    health = dict(system.appliance_rows("SELECT name, available FROM terminal_health"))
    assert health["east-gate"] == 1 and health["canteen"] == 1


def incidents(system: System) -> list[dict]:
    return [parse(bytes(data)) for (data,) in system.cloud_rows("SELECT data FROM log_record WHERE type = 'incident'")]
