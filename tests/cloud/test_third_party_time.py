"""Independent time (issue #22, item 2): a bundle without a TSA stamp over its records is never shown as a full
pass, by ``punchproof verify`` (exit 4) or by its report; ``cloud init`` asks for one or more TSAs and warns without
one; each configured TSA stamps every witness checkpoint, one that is down does not stop the others.

The bundle checks (``assert_...``) run on the exports test_evidence makes anyway: an export costs seconds (its PDF).
"""

from __future__ import annotations

import io
import re
from contextlib import redirect_stdout
from datetime import UTC, datetime

from cloud import witness
from cloud.admin.doctor import CloudDoctor
from cloud.appliances import registry
from cloud.config import CloudSettings
from cloud.evidence.tsa import TimestampClient
from cloud.evidence.witness_log import WitnessLog, witness_log
from cloud.ingest.verifier import BatchIngest
from cloud.store import open_db
from ledger import SigningKey, topics
from ledger.evidence import NO_THIRD_PARTY_TIME_ZH
from opskit.doctor import OK, WARN
from punchproof.cli import main as punchproof
from tests.harness.clock import FrozenClock
from tests.harness.logs import LogBuilder
from tests.harness.tsa import OpenSslTsa, TsaFault


def verify_cli(bundle: bytes, tmp_path, world, *extra: str) -> tuple[int, str]:
    """``punchproof verify`` on ``bundle`` with the witness key pinned: (exit status, what it printed)."""
    path, pin = tmp_path / "verified.zip", tmp_path / "witness.pem"
    path.write_bytes(bundle)
    pin.write_text(world["witness"].verify_key.pem())
    out = io.StringIO()
    with redirect_stdout(out):
        code = punchproof(["verify", str(path), "--witness-key", str(pin), *extra])
    return code, out.getvalue()


def assert_never_green_without_third_party_time(
    files: dict[str, bytes], bundle: bytes, tmp_path, world, *, report: bool = True
) -> None:
    """``bundle`` (whose files are ``files``) has no TSA stamp over its checkpoints: verify exits 4 and says why,
    and (``report``: the export made it so) its report says so at the top with no green conclusion. Called from
    test_evidence's own exports, which already pay for the PDF."""
    code, out = verify_cli(bundle, tmp_path, world)
    result = out.strip().splitlines()[-1]
    assert code == 4, out
    assert NO_THIRD_PARTY_TIME_ZH in out and "punchproof cloud init --tsa-url" in out
    assert (
        result.startswith("结论：")
        and "RESULT:" in result
        and "全部校验通过" not in result
        and "no third-party time" in result
    )
    assert " FAIL " not in out, "every check itself passed: only the third-party time is missing"
    if report:
        html = files["report.html"].decode()
        assert 'id="no-third-party-time"' in html and NO_THIRD_PARTY_TIME_ZH in html
        assert '<b class="ok">' not in html and "全部校验通过" not in html, "no green conclusion"


def assert_green_with_third_party_time(files: dict[str, bytes], bundle: bytes, tmp_path, world, tsa) -> None:
    """A stamped export: verify exits 0 with the full pass, and the report's conclusion is green."""
    code, out = verify_cli(bundle, tmp_path, world, "--tsa-ca", str(tsa.ca_path))
    assert code == 0 and out.strip().endswith("结论：全部校验通过 / RESULT: every check passed"), out
    assert NO_THIRD_PARTY_TIME_ZH not in out
    html = files["report.html"].decode()
    assert re.search(r'<b class="ok">全部校验通过</b>', html) and 'id="no-third-party-time"' not in html


def test_cloud_init_without_a_tsa_warns_and_the_doctor_and_check_config_say_so(tmp_path, capsys):
    config = tmp_path / "cloud.toml"
    assert punchproof(["cloud", "init", "-o", str(config), "--state-dir", str(tmp_path / "state")]) == 0
    err = capsys.readouterr().err
    assert "未配置第三方时间戳机构" in err and "no third-party timestamp authority" in err
    assert "[[tsa.authority]]" in err, "how to add one"
    assert punchproof(["cloud", "check-config", "-c", str(config)]) == 0  # a warning, not a failure
    assert "未配置第三方时间戳 / no third-party timestamp authority" in capsys.readouterr().out
    finding = CloudDoctor(CloudSettings.load(config)).check_timestamp_authorities()
    assert finding.status == WARN and "no third-party timestamp authority" in finding.detail
    assert "[[tsa.authority]]" in finding.fix_zh


def test_two_tsas_from_cloud_init_each_stamp_and_one_down_does_not_stop_the_other(tmp_path, capsys):
    with OpenSslTsa(tmp_path / "tsa-a") as first, OpenSslTsa(tmp_path / "tsa-b", name="Second TSA") as second:
        config = tmp_path / "cloud.toml"
        argv = ["cloud", "init", "-o", str(config), "--state-dir", str(tmp_path / "state")]
        for server in (first, second):
            argv += ["--tsa-url", server.url, "--tsa-ca-file", str(server.ca_path)]
        assert punchproof(argv) == 0
        assert "未配置第三方时间戳" not in capsys.readouterr().err
        settings = CloudSettings.load(config)
        assert [a.url for a in settings.tsas] == [first.url, second.url]
        assert [a.ca_file for a in settings.tsas] == [str(first.ca_path), str(second.ca_path)]
        assert CloudDoctor(settings).check_timestamp_authorities().status == OK
        db = open_db(settings.database_url)
        try:
            sync = _appliance(settings)
            log = witness_log(settings, witness.load(settings))
            sync()
            log.seal()
            assert sorted(row.tsa_url for row in log.stamp_latest("export")) == sorted([first.url, second.url])

            second.fault = TsaFault.HTTP_500
            sync()
            size = log.seal().size
            (row,) = log.stamp_latest("hourly", unless_stamped=True)
            assert (row.tsa_url, row.checkpoint_id) == (first.url, size)
            assert len(log.failures) == 1 and "HTTP 500" in log.failures[0]

            second.fault = TsaFault.NONE  # back: the next period asks only the TSA that has not stamped it
            (row,) = log.stamp_latest("hourly", unless_stamped=True)
            assert (row.tsa_url, row.checkpoint_id) == (second.url, size)
            assert log.stamp_latest("hourly", unless_stamped=True) == []
        finally:
            db.close()


def test_the_older_single_tsa_setting_still_counts_and_adds_to_the_list(tmp_path):
    settings = CloudSettings.from_sections(
        {
            "tsa": {
                "url": "https://old.example/tsa",
                "ca_file": "/etc/punchproof/old.pem",
                "authority": [{"url": "https://new.example/tsr", "ca_file": "new.pem"}],
            }
        },
        source=str(tmp_path / "cloud.toml"),
    )
    assert [(a.url, a.ca_file) for a in settings.tsas] == [
        ("https://old.example/tsa", "/etc/punchproof/old.pem"),
        ("https://new.example/tsr", str(tmp_path / "new.pem")),
    ]
    assert not CloudSettings.from_sections({}).tsas


def test_a_witness_log_given_one_stamper_still_works(tmp_path):
    """``WitnessLog(stamper=)`` (one TSA) is what earlier callers pass: it stamps as before."""
    assert WitnessLog(SigningKey.generate(), FrozenClock(datetime(2026, 3, 2, tzinfo=UTC))).stamped is False
    with OpenSslTsa(tmp_path / "tsa") as server:
        one = WitnessLog(SigningKey.generate(), FrozenClock(datetime(2026, 3, 2, tzinfo=UTC)), stamper=_client(server))
        assert one.stamped


def _client(server: OpenSslTsa) -> TimestampClient:
    return TimestampClient(server.url, server.ca_pem)


def _appliance(settings: CloudSettings):  # type: ignore[no-untyped-def]
    """A registered appliance whose batches the cloud cosigns; returns ``sync()``, which sends two minutes more."""
    clock = FrozenClock(datetime(2026, 3, 2, tzinfo=UTC))
    ingest = BatchIngest(clock, witness.load(settings), "test-cloud/witness")
    key = SigningKey.generate()
    origin = "punchproof/p1/pi-01/1"
    registry.register({"plant": "p1", "appliance": "pi-01", "log": origin, "public_key": key.verify_key.pem()}, clock)
    log = LogBuilder(key, origin, clock)

    def sync() -> None:
        log.minutes(2)
        ack = ingest.handle(topics.batch("p1", "pi-01"), log.next_batch().encode()).ack
        assert ack.status == "ok", ack.reason

    return sync
