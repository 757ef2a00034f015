"""What the benchmarks share: a punch record's terminal part, as the appliance writes it."""

TERM = {
    "name": "gate-1",
    "sn": "ZK-0001",
    "uid": 17,
    "t": "2026-03-02T07:58:00",
    "tz": "Asia/Shanghai",
    "verify": 1,
    "state": 0,
    "wc": 0,
    "idx": 1234,
    "off_ms": -120,
    "raw": "00" * 40,
}
