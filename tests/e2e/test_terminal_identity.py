"""The running appliance signs which terminal recorded the punches (#22.11, device provenance): the daemon
(``punchproof appliance run``) reading an emulated ZK terminal writes a ``terminal_identity`` incident naming its
serial number, model and firmware as the terminal reports them, once, not at every poll."""

from __future__ import annotations

from ledger import parse
from tests.harness.system import System
from tests.harness.wait import wait_until


def _identities(system: System) -> list[dict]:
    rows = system.appliance_rows("SELECT data FROM log_record WHERE type = 'incident' ORDER BY seq")
    return [r for r in (parse(bytes(data)) for (data,) in rows) if r.get("kind") == "terminal_identity"]


def test_the_daemon_signs_the_terminals_identity_once(tmp_path, broker, zk_terminal, terminal_state):
    system = System(tmp_path, broker.port, zk_terminal.address).configure()
    system.start_appliance()
    try:
        wait_until(lambda: _identities(system), timeout=60, message="the terminal's identity signed")
        [identity] = _identities(system)
        term = identity["term"]
        assert term["sn"] == terminal_state.serial == "TEST-ZK-01"
        assert term["firmware"] == terminal_state.firmware and term["firmware"]
        assert term["src"] == "zk" and identity["change"] == "new"
        # the terminal is read again and again (two punches, each read at a later poll): no second statement
        for n, user in enumerate(("1001", "1002"), start=1):
            terminal_state.punch(user)
            wait_until(
                lambda n=n: system.appliance_rows("SELECT count(*) FROM log_record WHERE type = 'punch'")[0][0] >= n,
                timeout=60,
                message=f"punch {n} read",
            )
        assert len(_identities(system)) == 1
    finally:
        system.stop_all_cleanly()
