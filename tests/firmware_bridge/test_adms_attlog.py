"""ATTLOG lines and devicecmd bodies, parsed line by line: a bad line is reported, never fatal."""

import hashlib
from datetime import UTC, datetime

from firmware_bridge.adms.attlog import MAX_LINE_BYTES, body_bytes, parse_attlog, split_lines
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


BIG = str(2**63)
OUT_OF_BOUNDS = {  # each a line as a corrupt log, a fuzzer or a typo sends it; each rejected with its reason
    b"1001\t" + b"9" * 20 + b"\t0\t1\t0": "neither",  # a 20-digit Unix time: OverflowError before
    b"1001\t0001-01-01 00:00:00\t0\t1\t0": "implausible time",  # 0001 in UTC+8 is before year 1 in UTC
    b"1001\t5138-11-16 09:46:40\t0\t1\t0": "implausible time",
    b"1001\t1999-12-31 23:59:59\t0\t1\t0": "implausible time",
    b"1001\t99999999999\t0\t1\t0": "neither",  # an 11-digit Unix time: year 5138
    b"1001\t4102444800\t0\t1\t0": "implausible time",  # 2100-01-01 as a Unix time
    f"1001\t2026-03-02 07:58:03\t{BIG}\t1\t0".encode(): "status",  # SQLite overflow at store before
    f"1001\t2026-03-02 07:58:03\t0\t{BIG}\t0".encode(): "verify",
    f"1001\t2026-03-02 07:58:03\t0\t1\t{BIG}".encode(): "work code",
    b"1001\t2026-03-02 07:58:03\t256\t1\t0": "status '256' is out of range",
    b"1001\t2026-03-02 07:58:03\t-1\t1\t0": "status '-1' is not a number",
    b"1001\t2026-03-02 07:58:03\t1_0\t1\t0": "status '1_0' is not a number",  # int() takes it
    "1001\t2026-03-02 07:58:03\t١\t1\t0".encode(): "status",  # an Arabic-Indic digit: int() takes it too
    "1001\t２０２６-03-02 07:58:03\t0\t1\t0".encode(): "neither",  # full-width digits
    b"-5\t2026-03-02 07:58:03\t0\t1\t0": "PIN '-5' is not a terminal user id",
    b"10 01\t2026-03-02 07:58:03\t0\t1\t0": "PIN '10 01' is not a terminal user id",
    b"10\x0001\t2026-03-02 07:58:03\t0\t1\t0": "PIN",
}


def test_every_field_is_bounded_and_each_line_out_of_bounds_is_rejected_on_its_own():
    good = b"1001\t2026-03-02 07:58:03\t5\t255\t4294967295\r\n"
    punches, rejected = parse(good + b"\r\n".join(OUT_OF_BOUNDS) + b"\r\n" + good.replace(b"07:58", b"07:59"))
    assert [(p.state, p.verify, p.workcode) for p in punches] == [(5, 255, 2**32 - 1)] * 2
    assert [p.index for p in punches] == [0, len(OUT_OF_BOUNDS) + 1]
    assert [r.raw for r in rejected] == list(OUT_OF_BOUNDS)
    for record, expected in zip(rejected, OUT_OF_BOUNDS.values(), strict=True):
        assert expected in record.reason, (record.raw, record.reason)
    assert parse(b"1001\t2099-12-31 23:59:59\r\n1001\t2000-01-01 00:00:00\r\n")[1] == [], "the window's edges"
    assert parse(b"1001\t2026-03-02 07:58:03\t0\t1\tA12\r\n")[0][0].workcode == 0, "a text work code stays in raw"


def test_a_line_too_long_to_be_a_punch_keeps_its_head_and_the_digest_of_the_whole():
    line = b"1001\t2026-03-02 07:58:03\t0\t1\t0" + b"\t0" * 100_000
    punches, (record,) = parse(line + b"\r\n")
    assert punches == [] and record.raw == line[:MAX_LINE_BYTES]
    assert f"line of {len(line)} bytes" in record.reason and hashlib.sha256(line).hexdigest() in record.reason


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
