"""ATTLOG lines and devicecmd bodies, parsed line by line: a bad line is reported, never fatal."""

from datetime import UTC, datetime

from firmware_bridge.adms.attlog import body_bytes, parse_attlog, split_lines
from firmware_bridge.adms.commands import parse_results
from tests.conftest import PLANT_TZ


def parse(body: bytes, encoding: str = "gb18030"):
    return parse_attlog(split_lines(body), serial="ADMS-1", tz=PLANT_TZ, encoding=encoding)


def test_a_line_keeps_pin_terminal_time_state_verify_workcode_and_bytes():
    (punch,), rejected = parse(b"1001\t2026-03-02 07:58:03\t255\t15\t7\t0\t0\r\n")
    assert rejected == []
    assert (punch.terminal_sn, punch.user_id, punch.state, punch.verify, punch.workcode) == (
        "ADMS-1",
        "1001",
        255,
        15,
        7,
    )
    assert punch.device_time == datetime(2026, 3, 2, 7, 58, 3)
    assert punch.at_utc == datetime(2026, 3, 1, 23, 58, 3, tzinfo=UTC)
    assert punch.raw == b"1001\t2026-03-02 07:58:03\t255\t15\t7\t0\t0"
    assert punch.time_source == "terminal"


def test_each_bad_line_is_rejected_with_its_reason_and_the_rest_arrive():
    body = (
        b"1001\t2026-03-02 07:58:03\t0\t1\t0\r\n"
        b"1002\t2026-02-30 08:00:00\t0\t1\t0\r\n"  # 30 February
        b"\t2026-03-02 08:00:00\t0\t1\t0\r\n"  # no PIN
        b"1003\r\n"  # no time
        b"1004\t2026-03-02 08:01:00\tIN\t1\t0\r\n"  # status is not a number
        b"\xff\xfe\x00garbage\r\n"
        b"1005\t2026-03-02 08:02:00\t1\t1\t0\r\n"
    )
    punches, rejected = parse(body)
    assert [p.user_id for p in punches] == ["1001", "1005"]
    assert [p.index for p in punches] == [0, 6]
    reasons = {r.index: r.reason for r in rejected}
    assert set(reasons) == {1, 2, 3, 4, 5}
    assert "impossible time" in reasons[1]
    assert "no PIN" in reasons[2]
    assert "two" in reasons[3]
    assert "status 'IN'" in reasons[4]
    assert rejected[0].raw == b"1002\t2026-02-30 08:00:00\t0\t1\t0"


def test_missing_state_and_verify_are_unknown_not_zero():
    (punch,), _ = parse(b"1001\t2026-03-02 07:58:03\r\n")
    assert (punch.state, punch.verify, punch.workcode) == (255, 255, 0)


def test_unix_time_and_keyed_lines_are_understood():
    (a, b), rejected = parse(
        b"1001\t1772409483\t0\t1\r\nPIN=1002\tDateTime=2026-03-02 08:00:00\tVerified=15\tStatus=1\r\n"
    )
    assert rejected == []
    assert a.device_time == datetime(2026, 3, 2, 7, 58, 3)  # 1772409483 = 2026-03-01 23:58:03 UTC
    assert (b.user_id, b.device_time, b.verify, b.state) == ("1002", datetime(2026, 3, 2, 8, 0), 15, 1)


def test_encoding_is_the_terminals():
    line = "王01\t2026-03-02 07:58:03\t0\t1\r\n"
    (punch,), _ = parse(line.encode("gb18030"))
    assert punch.user_id == "王01"
    punches, (rejected,) = parse(line.encode("gb18030"), encoding="utf-8")
    assert punches == [] and "not utf-8 text" in rejected.reason


def test_percent_encoded_form_bodies_are_decoded_raw_ones_are_not():
    raw = b"1001\t2026-03-02 07:58:03\t0\t1\t0\r\n"
    encoded = b"1001%092026-03-02+07%3A58%3A03%090%091%090%0D%0A"
    assert body_bytes(encoded, "application/x-www-form-urlencoded") == raw
    assert body_bytes(raw, "application/x-www-form-urlencoded") == raw
    assert body_bytes(encoded, "text/plain") == encoded


def test_devicecmd_results_batched_multiline_and_with_content():
    text = (
        "ID=11&Return=0&CMD=DATA\nID=12&Return=-1002&CMD=USER\n"
        "ID=13\nReturn=0\nCMD=Shell\nContent=Tue Mar 24 16:12:26 GMT 2026\n"
        "ID=14&Return=0&CMD=INFO\n~SerialNumber=ADMS-1\nUserCount=3\n"
    )
    reports = parse_results(text)
    assert [r["ID"] for r in reports] == ["11", "12", "13", "14"]
    assert reports[1]["Return"] == "-1002"
    assert reports[2]["CMD"] == "Shell" and reports[2]["Content"] == "Tue Mar 24 16:12:26 GMT 2026"
    assert reports[3]["Content"] == "~SerialNumber=ADMS-1\nUserCount=3"
