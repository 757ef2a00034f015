"""A push terminal that sends a bad line is never blocked (issue #23, item 2), on the real daemon.

Each bad line becomes one signed incident with its bytes, the good lines of its batch are stored
once, the terminal is answered OK, and its next batch goes through. Before, a 20-digit Unix time
or year 0001 got 500 and a status, verify or work code of 2⁶³ got 503 (SQLite's integer
overflow): the terminal re-sent the same batch for ever and its good punches never arrived.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from appliance.store import BadRecord, LogRecord
from tests.appliance import test_push
from tests.appliance.test_push import Appliance, punches, terminal

BIG = str(2**63)
BAD_LINES = {
    "a 20-digit Unix time": "{pin}\t" + "9" * 20 + "\t0\t1\t0\t0\t0",
    "year 0001": "{pin}\t0001-01-01 00:00:00\t0\t1\t0\t0\t0",
    "year 5138": "{pin}\t5138-11-16 09:46:40\t0\t1\t0\t0\t0",
    "before 2000": "{pin}\t1999-12-31 23:59:59\t0\t1\t0\t0\t0",
    "status 2^63": "{pin}\t2026-03-02 07:58:00\t" + BIG + "\t1\t0\t0\t0",
    "verify 2^63": "{pin}\t2026-03-02 07:58:00\t0\t" + BIG + "\t0\t0\t0",
    "work code 2^63": "{pin}\t2026-03-02 07:58:00\t0\t1\t" + BIG + "\t0\t0",
    "PIN -5": "-5\t2026-03-02 07:58:00\t0\t1\t0\t0\t0",
    "PIN with a space": "10 01\t2026-03-02 07:58:00\t0\t1\t0\t0\t0",
}


class Line:
    """A line of the terminal's log exactly as given (the emulator pushes ``line()``)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def line(self) -> str:
        return self.text


appliance = test_push.appliance  # the daemon with one push terminal, as test_push runs it


def incidents(appliance: Appliance) -> list[dict]:
    return [r for r in appliance.records("incident") if r["kind"] == "bad_terminal_record"]


def test_each_bad_line_becomes_one_incident_the_good_ones_are_stored_and_the_terminal_carries_on(appliance):
    device = terminal(appliance)
    start = datetime(2026, 3, 2, 7, 0)
    for n, (case, template) in enumerate(BAD_LINES.items()):
        before, after = start + timedelta(minutes=2 * n), start + timedelta(minutes=2 * n + 1)
        device.punch(f"{100 + n}", when=before)
        bad = template.format(pin=f"{100 + n}")
        device.records.append(Line(bad))
        device.punch(f"{100 + n}", when=after)
        assert device.run_once(), f"{case}: the batch was not answered OK"
        stored = [(u, t) for u, t in punches() if u == f"{100 + n}"]
        assert stored == [(f"{100 + n}", before.isoformat()), (f"{100 + n}", after.isoformat())], case
        latest = incidents(appliance)[-1]
        assert bytes.fromhex(latest["term"]["raw"]) == bad.encode(), case
        assert len(incidents(appliance)) == n + 1, f"{case}: one incident per bad line"
    # The OK of the last batch was lost: the terminal re-sends everything; nothing is stored twice.
    device.acked, device.pending = 0, None
    assert device.run_once()
    assert len(punches()) == 2 * len(BAD_LINES) and len(incidents(appliance)) == len(BAD_LINES)
    assert BadRecord.select().count() == len(BAD_LINES)
    assert appliance.chain_verifies() == LogRecord.select().count()


def test_a_line_too_long_for_one_record_is_kept_as_its_head_and_digest_and_the_batch_is_stored(appliance):
    """A record must fit in one uplink message (512 KiB): a 1 MiB line signed whole would stop the uplink."""
    device = terminal(appliance)
    device.punch("1001", when=datetime(2026, 3, 2, 7, 58))
    junk = "1002\t2026-03-02 07:59:00\t0\t1\t0" + "\t0" * (512 * 1024)
    device.records.append(Line(junk))
    device.punch("1003", when=datetime(2026, 3, 2, 8, 0))
    assert device.run_once()
    assert [u for u, _ in punches()] == ["1001", "1003"]
    (incident,) = incidents(appliance)
    assert len(bytes.fromhex(incident["term"]["raw"])) == 512
    assert hashlib.sha256(junk.encode()).hexdigest() in incident["reason"]
    assert max(len(bytes(r.data)) for r in LogRecord.select()) < 4096
