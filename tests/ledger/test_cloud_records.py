"""The cloud evidence log's record types (contact, receipt, case_action): their schema, their type version, and
a chain of them that verifies like any log."""

from __future__ import annotations

import pytest

from ledger import GENESIS_PREV, Malformed, SigningKey, make_record, parse
from ledger.messages import Batch
from ledger.record import employee_of
from ledger.verify import verify_batch

KEY = SigningKey.generate()
LOG = "punchproof-cloud/evidence/1"
CONTACT = {
    "tv": 1,
    "emp": "2001",
    "plant": "p1",
    "case": "case-1",
    "step": "L3",
    "channel": "email",
    "provider": "smtp",
    "recipient": "zhangsan@example.cn",
    "template": "cuigao@1",
    "content_sha256": "ab" * 32,
    "status": "sent",
    "provider_id": "<x@factory.example.cn>",
    "operator": "system",
    "at_ms": 1_741_000_000_000,
    "attempt": 7,
    "attachments": [{"name": "催告函.pdf", "sha256": "cd" * 32, "size": 1000, "mime": "application/pdf"}],
}
RECEIPT = {
    "tv": 1,
    "emp": "2001",
    "plant": "p1",
    "case": "case-1",
    "contact_seq": 0,
    "provider": "smtp",
    "provider_id": "<x@factory.example.cn>",
    "status": "delivered",
    "raw": '{"success": true}',
    "received_ms": 1_741_000_004_000,
}
ACTION = {
    "tv": 1,
    "emp": "2001",
    "plant": "p1",
    "case": "case-1",
    "entry": 12,
    "entry_hash": "ef" * 32,
    "kind": "approval",
    "actor": "hr-wang",
    "text": "hr-wang 审批 confirm_termination（1/2）",
    "at_ms": 1_741_000_100_000,
}


def _chain(bodies):
    prev, out = GENESIS_PREV, []
    for seq, (kind, body) in enumerate(bodies):
        record = make_record(key=KEY, log=LOG, seq=seq, type=kind, prev=prev, t_wall_ms=body["tv"] + seq, **body)
        out.append(record)
        prev = record.leaf
    return out


def test_a_chain_of_cloud_records_verifies_and_names_the_employee():
    records = _chain([("contact", CONTACT), ("receipt", RECEIPT), ("case_action", ACTION)])
    assert len(verify_batch(Batch(LOG, 0, tuple(records)), key=KEY.verify_key, prev=GENESIS_PREV)) == 3
    assert [employee_of(parse(r.data)) for r in records] == ["2001"] * 3


@pytest.mark.parametrize(
    ("kind", "body", "problem"),
    [
        ("contact", {**CONTACT, "attachments": "none"}, "attachments must be list"),
        ("contact", {k: v for k, v in CONTACT.items() if k != "content_sha256"}, "content_sha256 must be str"),
        ("receipt", {**RECEIPT, "contact_seq": "0"}, "contact_seq must be int"),
        ("case_action", {**ACTION, "actor": None}, "actor must be str"),
        ("contact", {**CONTACT, "tv": 2}, "tv 2 is not supported"),
    ],
)
def test_schema_violations_are_malformed(kind, body, problem):
    with pytest.raises(Malformed, match=problem):
        make_record(key=KEY, log=LOG, seq=0, type=kind, prev=GENESIS_PREV, t_wall_ms=1, **body)
