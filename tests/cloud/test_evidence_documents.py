"""The case's evidence bundle holds every document HR produced, and every bundle says what it was made for
(issue #19, items 8 and 11).

The seed's case, engine-level on real SQLite with the plant's log checkpointed and cosigned: the termination
confirmed after its drafts were reviewed (kept as case documents), served, in effect; HR issues the
解除劳动合同证明 and uploads the EMS receipt; two weeks later the father claims 工伤. Each of those is kept with
its SHA-256, which the cloud's signed evidence log records. The case's bundle must carry each of those files,
and ``punchproof verify`` fails a case bundle that lacks one. The accident day's bundle says, first, that it was
made for the work-injury claim, and ``verify`` discloses the worker's day fact (his 缺勤 that day).

Built once for the module (about 3 s); each test only reads the bundles."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import subprocess
import zipfile
from contextlib import redirect_stdout
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from cloud.config import CloudSettings
from cloud.escalation import actions, casefiles, documents, machine, preview, timeline
from cloud.escalation.casefiles import CaseDocument
from cloud.escalation.cases import locked_case
from cloud.escalation.models import AbsenceCase
from cloud.escalation.sender import RecordingSender
from cloud.evidence.export import case_scope, export_bundle, injury_purpose
from cloud.evidence.log import EvidenceLog
from cloud.evidence.witness_log import WitnessLog
from cloud.notices.records import NoticeDocument
from cloud.store import open_db
from ledger import SigningKey
from ledger.evidence import MANIFEST, SUMS, sha256sums, verify_bundle
from punchproof.cli import main as punchproof
from tests.cloud.escalation import wiring
from tests.cloud.escalation.plantfeed import local, ms, new_engine, seed_case_to_draft, serve_termination
from tests.cloud.escalation.test_injury_claim import ACCIDENT
from tests.cloud.escalation.test_wired_case import CheckpointedFeed
from tests.cloud.test_evidence_pdf import html_text, pdf_text, squeeze
from tests.cloud.test_punch_stamps import resign
from tests.harness.clock import FrozenClock

DAY = 86_400_000
RECEIPT = b"\xff\xd8\xff\xe0 EMS EA100200301CN signed for 2025-04-02 (a photo of the receipt)"


def _notices() -> CloudSettings:
    """The cloud's ``[notices]`` as the wired tests configure it (employer, union, HR's contacts)."""
    section = wiring.TOML.split("[notices]\n", 1)[1]
    values = dict(re.findall(r'^(\w+) = "([^"]*)"$', section, re.M))
    return CloudSettings.from_sections({"notices": values})


@dataclasses.dataclass
class World:
    case_id: int
    certificate: NoticeDocument
    upload: CaseDocument
    drafts: list[CaseDocument]
    case_bundle: bytes
    accident_bundle: bytes
    witness_pem: Path
    evidence: SigningKey  # the employer's evidence key: a stripped bundle's manifest signed again with it


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    folder = tmp_path_factory.mktemp("documents")
    machine._policies.clear()  # parsed policies are cached by row id, per process: another test's database had them
    database = open_db(f"sqlite:///{folder}/cloud.sqlite3")
    clock = FrozenClock(datetime(2025, 1, 1, tzinfo=UTC))
    witness, evidence = SigningKey.generate(), SigningKey.generate()
    settings = _notices()
    try:
        feed = CheckpointedFeed(clock).start_with(witness, handbook=wiring.HANDBOOK)
        feed.hire("2001")
        feed.hire("2002")
        wiring.staff("2001")
        sender = RecordingSender()
        engine = new_engine(clock, sender)
        case = seed_case_to_draft(feed, engine)
        # HR confirms the termination having reviewed its drafts, as the case page does: each kept with the case
        assert preview.approve(
            case.id, "confirm_termination", by="hr-wang", now_ms=ms(clock.now()), settings=settings.notices
        )
        engine.tick()
        serve_termination(clock, engine, sender, case.id)
        assert AbsenceCase.get_by_id(case.id).level == 8
        # the 解除劳动合同证明, issued (kept as a notice, in the timeline with its hash)
        certificate = documents.certificate(
            case.id, by="hr-li", settings=settings.notices, font=preview.notice_font(""), clock=clock
        )
        # the EMS receipt HR uploads, kept with its hash and written into the timeline as the case page does
        now = ms(clock.now())
        upload = casefiles.keep(case.id, "EMS回执.JPG", "image/jpeg", RECEIPT, by="hr-li", now_ms=now)
        with locked_case(case.id) as locked:
            timeline.append(
                locked,
                "document",
                f"上传文件《{upload.name}》SHA-256 {upload.sha256}",
                f"uploaded “{upload.name}”, SHA-256 {upload.sha256}",
                at_ms=now,
                actor="hr-li",
                document=upload.id,
                sha256=upload.sha256,
                size=upload.size,
            )
        drafts = list(CaseDocument.select().where((CaseDocument.case_id == case.id) & (CaseDocument.id != upload.id)))
        assert drafts and all("草稿" in d.name for d in drafts), [d.name for d in drafts]
        # two weeks later the father claims 工伤 for the accident on 03-14
        clock.advance(days=14)
        actions.claim_injury(
            case.id, by="hr-li", now_ms=ms(clock.now()), accident_ms=ms(local(ACCIDENT, "00:00")), claimant="员工父亲"
        )

        scope = case_scope(case.id)

        def bundle(first: date, last: date, **kwargs: object) -> bytes:
            return export_bundle(
                "2001",
                first,
                last,
                witness=witness.verify_key,
                clock=clock,
                plant_id="p1",
                witness_log=WitnessLog(witness, clock),
                evidence_log=EvidenceLog(evidence, witness, clock),
                evidence_key=evidence.verify_key,
                **kwargs,
            )

        case_bundle = bundle(scope.first_day, scope.today(clock), case_ref=scope.ref)
        _scope, day, purpose = injury_purpose(case.id)
        accident_bundle = bundle(day, day, purpose=purpose)
        pem = folder / "witness.pem"
        pem.write_text(witness.verify_key.pem(), encoding="utf-8")
        return World(case.id, certificate, upload, drafts, case_bundle, accident_bundle, pem, evidence)
    finally:
        database.close()


def _files(bundle: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        return {n: archive.read(n) for n in archive.namelist()}


def _rezip(files: dict[str, bytes], key: SigningKey) -> bytes:
    """The bundle with files dropped or changed, its manifest signed again with ``key`` and SHA256SUMS recomputed, as
    the employer stripping it would leave it."""
    files = {n: d for n, d in resign(files, key).items() if n != SUMS}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in {**files, SUMS: sha256sums(files)}.items():
            archive.writestr(name, data)
    return out.getvalue()


def _verify(world: World, bundle: bytes, tmp_path: Path, *extra: str) -> tuple[int, str]:
    path = tmp_path / "bundle.zip"
    path.write_bytes(bundle)
    out = io.StringIO()
    with redirect_stdout(out):
        code = punchproof(["verify", str(path), "--witness-key", str(world.witness_pem), *extra])
    return code, out.getvalue()


def test_the_case_bundle_holds_the_certificate_the_upload_and_the_reviewed_drafts_verified_by_hash(world, tmp_path):
    report = verify_bundle(world.case_bundle)
    assert report.ok, [c for c in report.checks if not c.ok]
    files = _files(world.case_bundle)
    claim = json.loads(files[MANIFEST])["case"]
    ref = f"case-{world.case_id}"
    cert = world.certificate
    assert cert.template_id == "jiechu_zhengming" and cert.pdf_sha256 in claim["notices"]
    assert files[f"cloud/notices/{cert.pdf_sha256}.pdf"] == bytes(cert.pdf)
    assert files[f"cloud/documents/{world.upload.sha256}.jpg"] == RECEIPT
    for draft in world.drafts:
        assert files[f"cloud/documents/{draft.sha256}.pdf"] == bytes(draft.data), draft.name
    assert sorted(claim["documents"]) == sorted([world.upload.sha256, *(d.sha256 for d in world.drafts)])
    check = next(c for c in report.checks if c.name == f"case {ref}")
    assert f"通知书 {len(claim['notices'])} 份、文书 {len(world.drafts) + 1} 份" in check.detail
    assert "案件保存的文件：人事上传的材料" in html_text(files["report.html"])
    # MANUAL-CHECKS.md's commands find every record, notice and document of the case, and miss the one taken out
    assert _by_hand(files, tmp_path / "whole") == ""
    gone = _by_hand({n: d for n, d in files.items() if world.upload.sha256 not in n}, tmp_path / "stripped")
    assert gone == f"missing: document {world.upload.sha256}\n"


def _by_hand(files: dict[str, bytes], folder: Path) -> str:
    """Run the case section's shell block of MANUAL-CHECKS.md in the unzipped bundle: what it prints."""
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    section = files["MANUAL-CHECKS.md"].decode().split("## 本案证据齐全")[1]
    block = re.findall(r"\n\n((?:    .*\n)+)", section)[0]
    script = "".join(line[4:] + "\n" for line in block.splitlines())
    done = subprocess.run(["bash", "-c", script], cwd=folder, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_verify_fails_a_case_bundle_without_the_certificate_or_the_upload(world, tmp_path):
    code, out = _verify(world, world.case_bundle, tmp_path)
    assert code == 4 and "RESULT: signatures and hashes OK" in out, out  # every check passes; exported without a TSA
    files = _files(world.case_bundle)
    ref, cert, upload = f"case-{world.case_id}", world.certificate.pdf_sha256, world.upload.sha256

    # the certificate's PDF taken out: the case lists it
    code, out = _verify(world, _rezip({n: d for n, d in files.items() if cert not in n}, world.evidence), tmp_path)
    (line,) = [line for line in out.splitlines() if "  FAIL  " in line]
    assert code == 1 and line.startswith(f"case {ref}"), out
    assert (
        f"本案 {ref} 的证据包缺少：通知书 1 份（{cert[:12]}）" in line
        and f"the bundle of {ref} lacks 1 notices" in line
    )

    # ...and struck from the manifest's list too: the signed record of HR issuing it still names it
    manifest = json.loads(files[MANIFEST])
    manifest["case"]["notices"].remove(cert)
    stripped = {n: d for n, d in files.items() if cert not in n} | {MANIFEST: json.dumps(manifest).encode()}
    code, out = _verify(world, _rezip(stripped, world.evidence), tmp_path)
    (line,) = [line for line in out.splitlines() if "  FAIL  " in line]
    assert code == 1 and f"本案 {ref} 的证据包缺少：文书 1 份（SHA-256 {cert[:12]}）" in line, out
    assert f"lacks 1 documents its records name (SHA-256 {cert[:12]})" in line

    # the EMS receipt HR uploaded, taken out
    code, out = _verify(world, _rezip({n: d for n, d in files.items() if upload not in n}, world.evidence), tmp_path)
    (line,) = [line for line in out.splitlines() if "  FAIL  " in line]
    assert code == 1 and f"本案 {ref} 的证据包缺少：文书 1 份（SHA-256 {upload[:12]}）" in line, out


def test_the_accident_days_bundle_says_it_was_made_for_the_work_injury_claim(world):
    files = _files(world.accident_bundle)
    ref = f"case-{world.case_id}"
    said = f"本证据包为案件 {world.case_id} 的工伤认定申请制作：事故日 2025-03-14"  # as the pages name it
    english = f"This bundle was made for the work-injury claim of case {ref}: the accident date 2025-03-14"
    html = html_text(files["report.html"])
    assert squeeze(said) in html and squeeze(english) in html
    assert html.index(squeeze(said)) < html.index(squeeze(english)) < html.index("员工工号")  # zh first, then en, first
    manual = files["MANUAL-CHECKS.md"].decode()
    assert said in manual and english in manual and manual.index(said) < manual.index(english) < manual.index("## 1.")
    assert squeeze(said) in pdf_text(files["report.pdf"])[0]
    # a case's bundle says it is the case's (an employee's bundle: tests/cloud/test_evidence.py)
    case_html = html_text(_files(world.case_bundle)["report.html"])
    assert squeeze(f"本证据包为案件 {world.case_id} 制作：工号 2001 自 2025-03-13 至") in case_html
    assert f"case-{world.case_id}" not in case_html.split("Thisbundle")[0]  # no internal reference on the Chinese line


def test_verify_discloses_the_workers_day_fact_with_his_badge(world, tmp_path):
    code, out = _verify(world, world.accident_bundle, tmp_path, "--json")
    report = json.loads(out)
    assert code == 4 and report["ok"] and report["result"] == "untimed", out  # exported without a TSA
    facts = [d for d in report["disclosed"] if d["fields"]["type"] == "dayfact"]
    assert [
        (d["emp"], d["fields"]["emp"], d["fields"]["fact"]["date"], d["fields"]["fact"]["status"]) for d in facts
    ] == [("2001", "2001", "2025-03-14", "missing")]
    # and the report lists it on its day, from the verifier's disclosure
    html = html_text(_files(world.accident_bundle)["report.html"])
    assert squeeze(f"本人的考勤结论记录（日志第 {facts[0]['seq']} 条）") in html
