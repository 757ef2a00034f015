"""The presentation layer (issue #22, item 7): the manifest lists every file's hash, the reports' included, and is
signed at export; punchproof verify checks that signature and compares every time report.html shows with the signed
record; the report calls its own checks the exporter's self-check.

The bundle is test_punch_stamps' real export (one per test process); the forgeries are made from it as someone
without the employer's keys could (edit, fix SHA256SUMS and the manifest's hashes) and as the employer could (sign
the edited manifest again with the evidence key).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess

import pytest

from ledger import SigningKey
from ledger.evidence import MANIFEST, SUMS, sha256sums
from tests.cloud.test_punch_stamps import repack, stamped_world, unpack, verify

SIG = "manifest.sig"


@pytest.fixture(scope="module")
def world(tmp_path_factory, pytestconfig):
    return stamped_world(tmp_path_factory, pytestconfig)


def fix_hashes(files: dict[str, bytes], key: SigningKey | None = None) -> dict[str, bytes]:
    """What a forger does after editing files: the manifest's hashes and SHA256SUMS made to match; with ``key`` (the
    employer's evidence key) the manifest signed again too."""
    manifest = json.loads(files[MANIFEST])
    if "files" in manifest:
        manifest["files"] = {
            n: hashlib.sha256(d).hexdigest()
            for n, d in sorted(files.items())
            if n not in (MANIFEST, SIG, "manifest.tsr", SUMS)
        }
    if key is not None:
        manifest["signed_by"] = key.verify_key.kid
    files = {**files, MANIFEST: json.dumps(manifest, ensure_ascii=False, indent=1).encode()}
    if key is not None:
        files = {**files, SIG: key.sign(files[MANIFEST])}
    return {**files, SUMS: sha256sums({n: d for n, d in files.items() if n != SUMS})}


def failed(report) -> str:
    return " ".join(f"{c.name}: {c.detail}" for c in report.checks if not c.ok)


def edit_first_time(html: str) -> tuple[str, str]:
    """The report with the first punch's displayed terminal time put 20 minutes earlier, and that time."""
    match = re.search(
        r'(<time datetime="[^"]*" data-log="[^"]*" data-seq="\d+" data-clock="terminal">)(\d\d):(\d\d)', html
    )
    if match is None:  # the report before its times were marked: the first bold time under a day
        match = re.search(r"(<b>)(\d\d):(\d\d)", html)
    assert match is not None
    hour, minute = int(match[2]), int(match[3])
    earlier = f"{hour - (minute < 20):02d}:{(minute - 20) % 60:02d}"
    return html[: match.start(2)] + earlier + html[match.end(3) :], earlier


def test_the_exported_bundle_is_signed_and_its_report_checked(world):
    report = verify(world["bundle"], world)
    assert report.ok, failed(report)
    names = {c.name: c for c in report.checks}
    assert "manifest signature" in names and "report times" in names
    assert "均与签名记录一致" in names["report times"].detail
    files = unpack(world["bundle"])
    manifest = json.loads(files[MANIFEST])
    assert manifest["signed_by"] == world["evidence"].verify_key.kid  # the bundle carries the evidence log
    assert manifest["files"]["report.html"] == hashlib.sha256(files["report.html"]).hexdigest()
    assert "report.pdf" in manifest["files"]
    html = files["report.html"].decode()
    assert "导出时自检（以 punchproof verify 的结果为准）" in html and "Exporter's self-check" in html
    assert html.count('data-clock="terminal"') == 2  # Monday's and Tuesday's punch


def test_an_edited_displayed_time_fails(world):
    """A displayed punch time moved 20 minutes earlier in report.html, SHA256SUMS and the manifest's hash fixed: fails
    on the signature; with the manifest signed again by the employer's key, on the report's times. Before, the
    edited report passed in full."""
    files = unpack(world["bundle"])
    html, earlier = edit_first_time(files["report.html"].decode())
    edited = {**files, "report.html": html.encode()}
    by_outsider = verify(repack(fix_hashes(edited)), world)
    assert not by_outsider.ok
    assert "清单 manifest.json 与其签名不符" in failed(by_outsider), failed(by_outsider)
    by_employer = verify(repack(fix_hashes(edited, world["evidence"])), world)
    assert not by_employer.ok
    assert re.search(rf"报告第 \d+ 条记录显示的时间与签名记录不符（显示 {earlier}", failed(by_employer)), failed(
        by_employer
    )


def test_a_punch_left_out_of_the_report_fails(world):
    files = unpack(world["bundle"])
    html = re.sub(
        r'<time datetime="[^"]*" data-log="[^"]*" data-seq="(\d+)" data-clock="\w+">([^<]*)</time>',
        r"\2",
        files["report.html"].decode(),
        count=2,
    )
    report = verify(repack(fix_hashes({**files, "report.html": html.encode()}, world["evidence"])), world)
    assert "报告未显示第" in failed(report), failed(report)


def test_an_edited_or_unsigned_manifest_fails(world):
    files = unpack(world["bundle"])
    manifest = json.loads(files[MANIFEST])
    manifest["period"]["to"] = "2026-03-02"  # Tuesday's punch no longer in the period it claims
    edited = {**files, MANIFEST: json.dumps(manifest, ensure_ascii=False, indent=1).encode()}
    report = verify(repack(edited), world)
    assert "清单 manifest.json 与其签名不符" in failed(report), failed(report)
    unsigned = {n: d for n, d in files.items() if n != SIG}
    report = verify(repack(unsigned), world)
    assert "证据包缺少清单签名 manifest.sig" in failed(report), failed(report)
    other = SigningKey.generate()  # signed, but by a key that is not the bundle's evidence key
    report = verify(repack(fix_hashes(edited, other)), world)
    assert "不是云端证据密钥" in failed(report), failed(report)


def test_the_manifest_checks_by_hand_with_openssl_as_written(world, tmp_path):
    """MANUAL-CHECKS.md's signed-manifest commands, run as written in the unzipped bundle: they pass, and the second
    names an edited report."""
    files = unpack(world["bundle"])
    manual = files["MANUAL-CHECKS.md"].decode()
    block = manual.split("file the manifest lists:\n\n", 1)[1].split("\n\n", 1)[0]
    assert "manifest.sig" in block and "sha256sum -c" in block
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    done = subprocess.run(["bash", "-c", block], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Signature Verified Successfully" in done.stdout and "report.html: OK" in done.stdout
    html, _earlier = edit_first_time(files["report.html"].decode())
    (tmp_path / "report.html").write_text(html)
    done = subprocess.run(["bash", "-c", block], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode != 0 and "report.html: FAILED" in done.stdout, done.stdout


def test_the_manifest_is_stamped_and_a_manifest_signed_again_is_not(world):
    """Where a TSA is configured, it stamps the manifest at export (manifest.tsr): the employer who edits the report
    and signs the manifest again has a stamp for another manifest, and verify says so."""
    files = unpack(world["bundle"])
    assert "manifest.tsr" in files
    (check,) = [c for c in verify(world["bundle"], world).checks if c.name == "manifest signature"]
    assert "时间戳机构于 2026-03-03 02:00:00 UTC 为其盖章" in check.detail, check.detail
    html, _earlier = edit_first_time(files["report.html"].decode())
    report = verify(repack(fix_hashes({**files, "report.html": html.encode()}, world["evidence"])), world)
    assert "清单的时间戳 manifest.tsr 与清单不符" in failed(report), failed(report)
