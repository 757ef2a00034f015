"""Documents HR adds to a case (病历, a police notice, the EMS receipt, a photo of a posted 公告).

Kept byte for byte with their SHA-256, computed on arrival: the hash goes into the case's timeline,
so that the file produced later in arbitration can be shown to be the one received. Never replaced
or deleted; the same bytes uploaded twice to one case are kept once.
"""

from __future__ import annotations

import hashlib

import peewee as pw

from cloud.store import BaseModel

MAX_BYTES = 20 * 1024 * 1024


class CaseDocument(BaseModel):
    case_id = pw.IntegerField(index=True)  # a plain id, like the contact log's case_ref: evidence outlives tables
    name = pw.CharField()
    mime = pw.CharField(default="application/octet-stream")
    size = pw.IntegerField()
    sha256 = pw.CharField(max_length=64)
    data = pw.BlobField()
    note = pw.TextField(default="")
    uploaded_by = pw.CharField(max_length=64)
    uploaded_ms = pw.BigIntegerField()

    class Meta:
        indexes = ((("case_id", "sha256"), True),)


MODELS = (CaseDocument,)


class DocumentError(ValueError):
    pass


def keep(case_id: int, name: str, mime: str, data: bytes, *, by: str, now_ms: int, note: str = "") -> CaseDocument:
    """Store the file (once per case); returns the stored row, old or new."""
    if not data:
        raise DocumentError("文件是空的 / the file is empty")
    if len(data) > MAX_BYTES:
        raise DocumentError(f"文件超过 {MAX_BYTES // 2**20} MB / the file is larger than {MAX_BYTES // 2**20} MB")
    digest = hashlib.sha256(data).hexdigest()
    existing = CaseDocument.get_or_none((CaseDocument.case_id == case_id) & (CaseDocument.sha256 == digest))
    if existing is not None:
        return existing
    return CaseDocument.create(
        case_id=case_id,
        name=name[:200] or "document",
        mime=mime or "application/octet-stream",
        size=len(data),
        sha256=digest,
        data=data,
        note=note,
        uploaded_by=by,
        uploaded_ms=now_ms,
    )
