"""Head office's front page shows what the quarantine counted but did not keep (#24.1)."""

from __future__ import annotations

from cloud.ingest import quarantine
from cloud.store import Quarantine, database


def test_the_front_page_shows_the_sample_and_the_counted_rest(app, login):
    with database.connection_context():
        for n in range(quarantine.SAMPLE + 3):
            quarantine.keep("pp/p1/pi-01/device/gate-1", f"device status: junk {n}", b"x" * 2048, 1_772_409_600_000 + n)
        assert Quarantine.select().count() == quarantine.SAMPLE
    page = login("admin").get("/devices").get_data(as_text=True)
    assert 'data-source="pp/p1/pi-01"' in page
    assert "pp/p1/pi-01：另有 3 条被隔离的消息（6 KiB）只计数、未保存" in page and "junk 102" in page
    manager = login("pm1").get("/devices").get_data(as_text=True)
    assert "pp/p1/pi-01" not in manager, "a plant manager sees no quarantine"
