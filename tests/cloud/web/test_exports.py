"""The evidence export button: the real export runs in its own process, the page follows its progress,
and the ZIP it hands over is the export's, whole (``ledger.evidence.verify_bundle`` checks its sums)."""

from __future__ import annotations

import io
import zipfile

from cloud import witness
from cloud.audit import AuditEntry
from cloud.store import database
from ledger.evidence import MANIFEST, verify_bundle
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
