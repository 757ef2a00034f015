"""The evidence export button: the real export runs in its own process, the page follows its progress,
and the ZIP it hands over is the export's, whole (``ledger.evidence.verify_bundle`` checks its sums)."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime

from cloud import witness
from cloud.audit import AuditEntry
from cloud.store import Plant, database
from ledger.evidence import MANIFEST, verify_bundle
from tests.harness.clock import FrozenClock
from tests.harness.wait import wait_until


def test_export_runs_in_the_background_and_downloads_the_zip(app, login):
    key, _public = witness.create(app.config["SETTINGS"])
    staff = login("staff")
    response = staff.post(
        "/evidence/export", {"employee": "2001", "plant": "p1", "first": "2025-03-01", "last": "2025-03-18"}
    )
    assert response.status_code == 302
    job = response.headers["Location"]
    assert "/evidence/jobs/" in job
    status = {}

    def finished() -> bool:
        status.update(staff.get(job + ".json").get_json())
        return bool(status["done"])

    wait_until(finished, timeout=120, message="the export process to finish")
    assert status["result"]["ok"], status
    assert any("reading the log" in line for line in status["progress"])
    page = staff.get(job).get_data(as_text=True)
    assert 'data-done="yes"' in page and 'id="download"' in page
    bundle = staff.get(job + "/bundle.zip")
    assert bundle.status_code == 200 and bundle.mimetype == "application/zip"
    with zipfile.ZipFile(io.BytesIO(bundle.data)) as archive:
        assert MANIFEST in archive.namelist()
    report = verify_bundle(bundle.data, witness_key=key.verify_key)
    checks = {c.name: c.ok for c in report.checks}
    # the bundle is whole and names our witness key; (the test plant made no checkpoints, so its proofs cannot be
    # complete: that part of the verifier is tested with real appliance logs in tests/cloud/test_evidence.py)
    assert checks["SHA256SUMS"] and checks["witness key"]
    assert login("staff2").get(job + "/bundle.zip").status_code == 404  # another user's job
    assert login("aud").get(job + "/bundle.zip").status_code == 200  # the auditor may
    with database.connection_context():
        actions = [a.action for a in AuditEntry.select().order_by(AuditEntry.id)]
    assert actions == ["evidence.export", "evidence.download", "evidence.download"]


def test_an_export_that_cannot_run_says_why(app, login):
    staff = login("staff")  # no witness key in this state directory
    job = staff.post(
        "/evidence/export", {"employee": "2001", "plant": "p1", "first": "2025-03-01", "last": "2025-03-18"}
    ).headers["Location"]
    status = {}
    wait_until(lambda: status.update(staff.get(job + ".json").get_json()) or status["done"], timeout=60)
    assert status["result"]["ok"] is False and "witness key" in status["result"]["error"]
    assert staff.get(job + "/bundle.zip").status_code == 404


def test_the_period_ends_today_where_the_plant_is(app, login):
    """HR in Dongguan exporting at 01:30 on the 19th: the server's clock (UTC) is still on the 18th, and the form's
    default end of the period must be the plant's today, the day the absence they came for is on."""
    app.config["CLOCK"] = FrozenClock(datetime(2025, 3, 18, 17, 30, tzinfo=UTC))  # 2025-03-19 01:30 in Shanghai
    assert Plant.get_by_id("p1").timezone == "Asia/Shanghai"
    page = login("staff").get("/evidence").get_data(as_text=True)
    assert 'name="last" value="2025-03-19"' in page
