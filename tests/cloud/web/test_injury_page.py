"""The case's 登记工伤申请 page, pressed as HR presses it (issue #19, item 11): the family's claim registered with
the page's CSRF token, the claim's state, its tasks and the review's reasons shown in Chinese without internal
codes, the decision form, and the evidence bundle for the accident's date downloaded and verified for real.
An auditor sees the page but cannot register a claim."""

from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import date, timedelta

import pytest
from werkzeug.security import generate_password_hash

from cloud import witness
from cloud.config import CloudSettings
from cloud.escalation import actions, cases
from cloud.escalation.models import AbsenceCase, CaseTask
from cloud.escalation.sender import RecordingSender
from cloud.store import Account, database, open_db
from cloud.web import create_app
from ledger.evidence import MANIFEST, verify_bundle
from punchproof.cli import main as punchproof
from tests.cloud.escalation.plantfeed import day_passes, local, new_engine
from tests.cloud.escalation.test_wired_case import CheckpointedFeed
from tests.harness.clock import FrozenClock

PASSWORD = "a long enough password"
START = date(2025, 3, 3)


@pytest.fixture
def setup(tmp_path):
    """A case of worker 2001 (absent from Monday 03-03, 2002 at work) on a SQLite file the app opens, the
    witness key where the settings say, two accounts: HR staff and an auditor."""
    settings = CloudSettings(database_url=f"sqlite:///{tmp_path}/cloud.sqlite3", state_dir=str(tmp_path))
    key, _public = witness.create(settings)
    open_db(settings.database_url)
    cases._policies.clear()
    clock = FrozenClock()
    clock._now = clock.now().replace(year=2025, month=1, day=1)
    feed = CheckpointedFeed(clock).start_with(key)
    feed.hire("2001")
    feed.hire("2002")
    engine = new_engine(clock, RecordingSender())
    clock.advance_to(local(START, "06:00"))
    for day in (START, START + timedelta(days=1), START + timedelta(days=2)):
        feed.punch("2002", local(day, "07:55"))
        feed.punch("2002", local(day, "17:05"))
        day_passes(feed, engine, day)
    clock.advance(hours=9)
    engine.tick()
    for name, role in (("hr-li", "hr_staff"), ("aud", "auditor")):
        Account.create(username=name, password_hash=generate_password_hash(PASSWORD), role=role, created_ms=0)
    case_id = AbsenceCase.get(AbsenceCase.user_id == "2001").id
    database.close()
    app = create_app(settings)
    app.config["CLOCK"] = clock
    yield app, case_id, key
    if not database.is_closed():
        database.close()


def _token(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no CSRF token on the page"
    return found.group(1)


def _login(app, username: str):  # type: ignore[no-untyped-def]
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    response = client.post("/login", data={"csrf": _token(page), "username": username, "password": PASSWORD})
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def test_hr_registers_the_familys_claim_sees_what_is_held_and_downloads_the_accident_days_bundle(setup):
    app, case_id, key = setup
    hr = _login(app, "hr-li")
    page = hr.get(f"/cases/{case_id}/injury").get_data(as_text=True)
    assert 'id="no-claim"' in page and 'id="injury-claim"' in page and "登记工伤申请" in page
    form = {"accident_date": "2025-03-04", "claimant": "员工父亲张某", "note": "称上班途中遭遇交通事故"}
    assert hr.post(f"/cases/{case_id}/injury", data=form).status_code == 400  # no CSRF token: refused
    response = hr.post(f"/cases/{case_id}/injury", data={"csrf": _token(page), **form})
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/cases/{case_id}/injury")

    page = hr.get(f"/cases/{case_id}/injury").get_data(as_text=True)
    assert "工伤申请已登记" in page and 'data-claim="pending"' in page
    assert 'id="accident-date">2025-03-04<' in page and "员工父亲张某" in page and "待认定" in page
    assert "第四十二条第（二）项" in page and "并不禁止依照第三十九条解除" in page  # why the review
    assert 'data-task="injury_report"' in page and 'data-task="review_injury"' in page
    assert "复核旷工认定" in page  # no termination yet: the absence record is what is reviewed
    for code in ("L3", "cuigao", "review_injury</", "MEDICAL"):  # no internal code as text
        assert code not in re.sub(r"<[^>]+>", " ", page), code
    with database.connection_context():
        case = AbsenceCase.get_by_id(case_id)
        assert case.state == "MEDICAL_OR_INJURY_TRACK"  # the ladder waits for the decision
        report = CaseTask.get((CaseTask.case == case_id) & (CaseTask.kind == "injury_report"))
        assert report.status == "open" and report.due_ms == local(date(2025, 4, 3), "00:00").timestamp() * 1000

    download = hr.get(f"/cases/{case_id}/injury/bundle.zip")
    assert download.status_code == 200 and download.mimetype == "application/zip"
    assert f"evidence-case-{case_id}-accident-2025-03-04.zip" in download.headers["Content-Disposition"]
    result = verify_bundle(download.data, witness_key=key.verify_key)
    assert result.ok, [c for c in result.checks if not c.ok]
    with zipfile.ZipFile(io.BytesIO(download.data)) as archive:
        manifest = json.loads(archive.read(MANIFEST))
    assert manifest["purpose"]["case"] == f"case-{case_id}" and manifest["purpose"]["accident_date"] == "2025-03-04"
    assert manifest["period"] == {"from": "2025-03-04", "to": "2025-03-04"} and manifest["employee"] == "2001"

    page = hr.get(f"/cases/{case_id}/injury").get_data(as_text=True)
    decision = {"csrf": _token(page), "outcome": "rejected", "note": "不予认定书 7 号"}
    response = hr.post(f"/cases/{case_id}/injury/decision", data=decision)
    assert response.status_code == 302
    page = hr.get(f"/cases/{case_id}/injury").get_data(as_text=True)
    assert 'data-claim="rejected"' in page and "不予认定为工伤" in page
    with database.connection_context():
        assert actions.injury_claim(case_id).outcome == "rejected"
        assert AbsenceCase.get_by_id(case_id).state != "MEDICAL_OR_INJURY_TRACK"  # the ladder resumes

    auditor = _login(app, "aud")
    page = auditor.get(f"/cases/{case_id}/injury").get_data(as_text=True)
    assert 'id="claim"' in page and 'id="injury-claim"' not in page
    assert auditor.post(f"/cases/{case_id}/injury", data={"csrf": _token(page), **form}).status_code == 403


def test_the_cli_registers_the_claim_writes_the_days_bundle_and_records_the_decision(setup, tmp_path, capsys):
    _app, case_id, key = setup
    toml = tmp_path / "cloud.toml"
    toml.write_text(
        f'[cloud]\nstate_dir = "{tmp_path}"\n\n[database]\nurl = "sqlite:///{tmp_path}/cloud.sqlite3"\n',
        encoding="utf-8",
    )
    case = ("cloud", "case")
    assert punchproof([*case, "decide-injury", "-c", str(toml), str(case_id), "rejected"]) == 1  # nothing to decide
    assert "没有待定的工伤申请" in capsys.readouterr().err
    claim = ["claim-injury", "-c", str(toml), str(case_id), "--accident-date", "2025-03-04", "--claimant", "员工父亲"]
    assert punchproof([*case, *claim, "--by", "hr-li"]) == 0
    out = capsys.readouterr().out
    assert "待认定" in out and "2025-03-04" in out and "复核旷工认定" in out
    path = tmp_path / "day.zip"
    assert punchproof([*case, "injury-bundle", "-c", str(toml), str(case_id), "-o", str(path)]) == 0
    result = verify_bundle(path.read_bytes(), witness_key=key.verify_key)
    assert result.ok and json.loads(zipfile.ZipFile(path).read(MANIFEST))["purpose"]["accident_date"] == "2025-03-04"
    assert punchproof([*case, "decide-injury", "-c", str(toml), str(case_id), "recognised", "--note", "认定书"]) == 0
    assert "认定为工伤" in capsys.readouterr().out
    with database.connection_context():
        claim_ = actions.injury_claim(case_id)
        assert (claim_.by, claim_.outcome, claim_.claimant) == ("hr-li", "recognised", "员工父亲")
