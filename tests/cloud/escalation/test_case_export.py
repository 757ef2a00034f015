"""The case page's 导出本案证据包, pressed as HR presses it: a case whose notices went out over real wires (SMTP,
Aliyun SMS, WeCom), whose contacts were logged and on which HR acted on the page; the export runs in its own
process (``cloud.workers.export_job``) and the ZIP is downloaded from the page. It must hold what the case rests on —
the employee's records, the notices, every contact attempt and HR's actions — and everything the CLI's bundle
for the same case holds (issue #19.8: the page's bundle had no cloud evidence log, and still verified)."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import subprocess
import sys
import zipfile
from contextlib import ExitStack
from datetime import date
from pathlib import Path

import pytest
from werkzeug.security import generate_password_hash

from cloud import witness
from cloud.channels import manual
from cloud.channels.contact_log import ContactAttempt
from cloud.escalation import actions, cases
from cloud.escalation.models import AbsenceCase
from cloud.evidence.log import ORIGIN, create_key
from cloud.notices.records import NoticeDocument
from cloud.store import Account, database, open_db
from cloud.web import create_app
from ledger import SigningKey
from ledger.evidence import MANIFEST, SUMS, bundle_id, sha256sums, verify_bundle
from tests.cloud.escalation import wiring
from tests.cloud.escalation.plantfeed import day_passes, local, ms
from tests.cloud.escalation.test_wired_case import CheckpointedFeed
from tests.cloud.test_punch_stamps import resign
from tests.harness.raw_codes import raw_codes, visible_text
from tests.harness.wait import wait_until

PASSWORD = "a long enough password"
VOLATILE = (
    "witness/",
    "report.",
    "MANUAL-CHECKS.md",
    MANIFEST,
    "manifest.sig",
    "SHA256SUMS",
)  # differ between two exports


@pytest.fixture
def wired(tmp_path, clock):
    """The wired cloud on one SQLite file that the page, the export process and the CLI all open, with its
    witness and evidence keys on disk where ``cloud.toml`` says (the export process loads them from there)."""
    with ExitStack() as stack:
        setup = wiring.start(tmp_path, clock, stack)
        url = f"sqlite:///{tmp_path}/cloud.sqlite3"
        toml = tmp_path / "cloud.toml"
        text = toml.read_text(encoding="utf-8")
        toml.write_text(re.sub(r'url = "sqlite:///[^"]*"', f'url = "{url}"', text, count=1), encoding="utf-8")
        setup.settings = dataclasses.replace(setup.settings, database_url=url)
        setup.witness, _public = witness.create(setup.settings)
        setup.evidence_key = create_key(setup.settings)
        db = open_db(url)
        cases._policies.clear()
        yield setup
        if not db.is_closed():
            db.close()


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


def _form(page: str, form_id: str) -> tuple[str, dict[str, str]]:
    """The action and hidden fields of the page's form ``form_id``: what the browser posts when it is pressed."""
    found = re.search(rf'<form method="post" action="([^"]+)"[^>]*id="{form_id}">(.*?)</form>', page, re.S)
    assert found, f"no form {form_id} on the page"
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', found.group(2)))
    return found.group(1), fields


def _case_with_notices_contacts_and_hr_actions(wired, clock) -> AbsenceCase:  # type: ignore[no-untyped-def]
    """Worker 2001 absent from Monday 03-03: the reminder, the warning and the 催告函 (with its PDF, by e-mail,
    SMS, WeCom, and an EMS task) go out; HR records the EMS delivery and completes the task."""
    feed = CheckpointedFeed(clock).start_with(wired.witness, handbook=wiring.HANDBOOK)
    feed.hire("2001")
    wiring.staff("2001")
    service = wired.service(clock)
    clock.advance_to(local(date(2025, 3, 3), "06:00"))
    for day in (date(2025, 3, 3), date(2025, 3, 4), date(2025, 3, 5)):
        day_passes(feed, service, day)
        clock.advance(hours=9)
        service.tick()
    case = AbsenceCase.get(AbsenceCase.user_id == "2001")
    ems = ContactAttempt.get((ContactAttempt.step_id == "L3") & (ContactAttempt.provider == "person.ems"))
    manual.record_result(ems.id, manual.Outcome.EMS_DELIVERED, operator="hr-wang", waybill="EA100200300CN", clock=clock)
    actions.complete_task(case.id, "ems_cuigao", by="hr-wang", now_ms=ms(clock.now()), proof="EMS EA100200300CN")
    service.tick()
    return case


def _files(bundle: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        return {n: archive.read(n) for n in archive.namelist()}


def test_the_case_pages_export_holds_the_cases_evidence_and_everything_the_clis_does_and_verify_misses_nothing(
    wired, clock, tmp_path
):
    case = _case_with_notices_contacts_and_hr_actions(wired, clock)
    Account.create(username="hr-li", password_hash=generate_password_hash(PASSWORD), role="hr_admin", created_ms=0)
    app = create_app(wired.settings)
    app.config["CLOCK"] = clock
    hr = _login(app, "hr-li")

    page = hr.get(f"/cases/{case.id}").get_data(as_text=True)
    assert "导出本案证据包" in page
    action, fields = _form(page, "export-form")
    response = hr.post(action, data=fields)
    assert response.status_code == 302, response.get_data(as_text=True)
    job = response.headers["Location"]
    running = hr.get(job)
    if "<script" in running.get_data(as_text=True):  # the page polls while the job runs: allowed by its CSP
        nonce = re.search(r"'nonce-([^']+)'", running.headers["Content-Security-Policy"]).group(1)
        assert f'<script nonce="{nonce}">' in running.get_data(as_text=True)
    status: dict = {}

    def finished() -> bool:
        status.update(hr.get(job + ".json").get_json())
        return bool(status["done"])

    wait_until(finished, timeout=180, message="the case's export to finish")
    assert status["result"]["ok"], status
    download = hr.get(job + "/bundle.zip")
    assert download.status_code == 200
    bundle = download.data
    if not database.is_closed():
        database.close()
    open_db(wired.settings.database_url)

    report = verify_bundle(bundle, witness_key=wired.witness.verify_key)
    assert report.ok, [c for c in report.checks if not c.ok]
    files = _files(bundle)
    manifest = json.loads(files[MANIFEST])
    # the employee's own records: the appliance's day facts on him (absent, not one punch), signed and proven
    (plant_log,) = [n for n, log in enumerate(manifest["logs"]) if log.get("kind") != "cloud"]
    own = [
        json.loads(data) for name, data in files.items() if re.fullmatch(rf"logs/{plant_log}/records/\d+\.json", name)
    ]
    assert own and {r["type"] for r in own} == {"dayfact"} and {r["fact"]["emp"] for r in own} == {"2001"}
    # the cloud's evidence log: every contact attempt of his case, HR's actions, the notices as sent
    kinds = [log.get("kind") for log in manifest["logs"]]
    assert "cloud" in kinds, f"the page's bundle has no cloud evidence log: {kinds}"
    cloud = [d["fields"] for d in report.disclosed if d["log"] == ORIGIN]
    attempts = ContactAttempt.select().where(ContactAttempt.case_ref == f"case-{case.id}")
    assert sorted(f["attempt"] for f in cloud if f["type"] == "contact") == sorted(a.id for a in attempts)
    assert {f["actor"] for f in cloud if f["type"] == "case_action"} == {"hr-wang"}
    assert any(f["type"] == "receipt" for f in cloud)
    notices = {n.pdf_sha256 for n in NoticeDocument.select().where(NoticeDocument.case_ref == f"case-{case.id}")}
    attached = {a["sha256"] for f in cloud if f["type"] == "contact" for a in f["attachments"]}
    assert attached and attached <= notices
    assert {n for n in files if n.startswith("cloud/notices/")} == {f"cloud/notices/{h}.pdf" for h in attached}
    contacts = next(c for c in report.checks if c.name.endswith(": contacts"))
    assert contacts.ok and not contacts.detail.startswith("0 ")

    # a case's bundle says so, and lists what the case must carry
    claim = manifest["case"]
    assert claim["ref"] == f"case-{case.id}" and claim["notices"] == sorted(attached)
    assert len(claim["contacts"]) == attempts.count() and claim["actions"] and claim["receipts"]
    assert next(c for c in report.checks if c.name == f"case case-{case.id}").ok
    assert f"本案证据齐全 / The case's evidence is all here (case-{case.id})" in files["MANUAL-CHECKS.md"].decode()
    assert f"<th>案件</th><td><b>案件 {case.id}（本案证据包" in files["report.html"].decode()
    shown = visible_text(files["report.html"].decode())
    assert "北京时间" in shown and "Asia/Shanghai" not in shown, "the plant's zone as people name it"
    # each contact's step, channel, operator and template in words (not L1, sms, system, warning@1); recipients
    # (WeCom user ids, addresses) and the providers' message ids are data
    said = [re.sub(r"→ [^（]*", "", line) for line in shown.splitlines() if "→" in line]
    said += [line.split("；")[0] for line in shown.splitlines() if line.startswith("模板")]
    assert said and raw_codes("\n".join(said), data={"hr-wang"}) == [], said  # hr-wang: HR's login
    # the 催告函's SMS as the phone showed it (its approved content is configured), from the signed record
    sms = ContactAttempt.get((ContactAttempt.step_id == "L3") & (ContactAttempt.channel == "sms.aliyun"))
    assert sms.sent_text.startswith("【某某电子】") and "请于" in sms.sent_text and "{" not in sms.sent_text
    assert f"短信原文：{sms.sent_text}" in shown

    # the CLI's bundle for the same case (to the page's today, the test's clock): the page's holds everything
    # it does, record for record
    cli_zip = tmp_path / "cli.zip"
    toml = tmp_path / "cloud.toml"
    done = _cli("cloud", "export-evidence", "-c", toml, "--case", case.id, "--to", fields["last"], "-o", cli_zip)
    assert done.returncode == 0, done.stderr
    cli = _files(cli_zip.read_bytes())
    stable = {n for n in cli if not n.startswith(VOLATILE)}
    assert stable == {n for n in files if not n.startswith(VOLATILE)}
    assert {n: cli[n] for n in stable} == {n: files[n] for n in stable}
    cli_manifest = json.loads(cli[MANIFEST])
    for key in ("format", "employee", "period", "plants", "logs", "case"):
        assert manifest[key] == cli_manifest[key], key

    # and the verifier fails that bundle when the case's contacts and notices are taken out of it
    _verify_fails_a_case_bundle_without_the_cases_contacts_and_notices(wired, case, cli_zip, tmp_path)


def _cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "punchproof", *map(str, args)], capture_output=True, text=True, timeout=300, check=False
    )


def _rezip(files: dict[str, bytes], key: SigningKey) -> bytes:
    """The bundle as the employer could leave it: files dropped or changed, the manifest signed again with ``key``
    (the cloud's evidence key) with the bundle id of the files left, SHA256SUMS recomputed."""
    manifest = json.loads(files[MANIFEST])
    if "bundle_id" in manifest:
        files = {**files, MANIFEST: json.dumps({**manifest, "bundle_id": bundle_id(files)}).encode()}
    files = {n: d for n, d in resign(files, key).items() if n != SUMS}
    files[SUMS] = sha256sums(files)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def _verify_fails_a_case_bundle_without_the_cases_contacts_and_notices(wired, case, path, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``punchproof verify`` passes the CLI's case bundle, and fails it once the case's contacts and notices, or
    the cloud's whole log, are taken out (SHA256SUMS recomputed), or its format is one it does not know."""
    pin = ("--witness-key", wired.settings.witness_public_path)
    ok = _cli("verify", path, *pin)
    assert ok.returncode == 4, ok.stdout  # every check passes; the cloud here has no TSA: no third-party time
    assert f"case case-{case.id}" in ok.stdout and f"本案 case-{case.id} 的证据齐全" in ok.stdout

    files = _files(path.read_bytes())
    key = SigningKey.load(Path(wired.settings.evidence_key_path))  # the employer holds it
    claim = json.loads(files[MANIFEST])["case"]
    (base,) = [n.rsplit("/", 1)[0] for n in files if n.endswith("/log.json") and b'"kind": "cloud"' in files[n]]
    listed = claim["contacts"] + claim["receipts"] + claim["actions"]
    stripped = {
        n: d
        for n, d in files.items()
        if not n.startswith("cloud/notices/")
        and not any(n.startswith((f"{base}/records/{seq}.", f"{base}/requests/{seq}")) for seq in listed)
    }
    tampered = tmp_path / "stripped.zip"
    tampered.write_bytes(_rezip(stripped, key))
    failed = _cli("verify", tampered, *pin)
    assert failed.returncode == 1, failed.stdout
    lines = [line for line in failed.stdout.splitlines() if "  FAIL  " in line]
    # the case's check, and the owner tags': the worker's records (the first of them gave the tag key) are withheld
    assert [line.split("  ")[0] for line in lines] == [
        f"{ORIGIN} [0, {json.loads(files[f'{base}/log.json'])['to_size']}): owner tags",
        f"case case-{case.id}",
    ], failed.stdout
    assert f"本案 case-{case.id} 的证据包缺少：联络记录 {len(claim['contacts'])} 条" in lines[1]
    assert f"通知书 {len(claim['notices'])} 份" in lines[1]
    assert f"the bundle of case-{case.id} lacks {len(claim['contacts'])} contact attempts" in lines[1]
    assert "校验未通过" in failed.stdout

    # the cloud's log taken out whole, with its manifest entry: still a case bundle, still failing
    index = int(base.rsplit("/", 1)[1])
    manifest = json.loads(files[MANIFEST])
    del manifest["logs"][index]
    whole = {n: d for n, d in stripped.items() if not n.startswith(f"{base}/")}
    whole[MANIFEST] = json.dumps(manifest).encode()
    tampered.write_bytes(_rezip(whole, key))
    failed = _cli("verify", tampered, *pin)
    assert failed.returncode == 1 and "缺少云端证据日志" in failed.stdout, failed.stdout

    # a format this verifier does not know is refused, not guessed at
    manifest = json.loads(files[MANIFEST])
    manifest["format"] = "punchproof-evidence/9"
    tampered.write_bytes(_rezip({**files, MANIFEST: json.dumps(manifest).encode()}, key))
    failed = _cli("verify", tampered, *pin)
    assert failed.returncode == 1 and "证据包格式 punchproof-evidence/9 未知" in failed.stdout, failed.stdout
