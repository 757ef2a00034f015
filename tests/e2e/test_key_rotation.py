"""Rotating the appliance's key with the real commands: the cloud learns the new key from the log itself."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from ledger import GENESIS_PREV, SignedRecord, VerifyKey
from ledger.merkle import CompactRange
from ledger.messages import Batch
from ledger.verify import verify_range
from tests.harness.system import System, cli
from tests.harness.wait import wait_until

pytestmark = pytest.mark.e2e


def test_rotate_key_then_restart_hands_the_log_over_and_the_cloud_follows(
    tmp_path, broker, zk_terminal, terminal_state
):
    system = System(tmp_path, broker.port, zk_terminal.address).configure()
    identity = json.loads((tmp_path / "identity.json").read_text())
    punches = "SELECT employee FROM punch ORDER BY seq"
    try:
        system.start_ingest()
        system.start_appliance()
        terminal_state.punch("1001", when=datetime(2026, 3, 2, 7, 58))
        wait_until(lambda: system.cloud_rows(punches) == [("1001",)], timeout=20, message="the first punch")
        assert system.stop("appliance") == 0
        out = cli("appliance", "rotate-key", "-c", system.appliance_conf)
        assert "Restart the appliance" in out
        system.start_appliance()
        terminal_state.punch("1002", when=datetime(2026, 3, 2, 8, 1))
        wait_until(lambda: system.cloud_rows(punches) == [("1001",), ("1002",)], timeout=20, message="after rotation")
    finally:
        codes = system.stop_all()
    assert all(code == 0 for code in codes.values()), "\n".join(system.log(n) for n in codes)
    keys = system.cloud_rows("SELECT kid, valid_from_seq, valid_to_seq FROM appliance_key ORDER BY valid_from_seq")
    (rotation_seq,) = system.cloud_rows("SELECT seq FROM log_record WHERE type = 'keyrot'")[0]
    new_kid = json.loads(cli("appliance", "identity", "-c", system.appliance_conf))["kid"]
    assert keys == [(identity["kid"], 0, rotation_seq), (new_kid, rotation_seq + 1, None)]
    assert new_kid != identity["kid"]
    # The cloud's copy verifies from the first key alone: the rotation record vouches for the second.
    rows = system.cloud_rows("SELECT data, sig FROM log_record ORDER BY seq")
    batch = Batch(identity["log"], 0, tuple(SignedRecord(bytes(d), bytes(s)) for d, s in rows))
    verified = verify_range(
        batch, key=VerifyKey.from_pem(identity["public_key"]), prev=GENESIS_PREV, tree=CompactRange()
    )
    assert [kid.kid for _, kid in verified.rotations] == [new_kid]
    assert [p.name for p in (tmp_path / "appliance").rglob("*.next")] == []  # the old key is gone
