"""Errors of the record format. Each says what is wrong with which record."""


class LedgerError(Exception):
    """Base class: the bytes presented are not a valid part of a punch log."""


class Malformed(LedgerError):
    """The bytes do not parse, or do not follow the canonical form or the schema."""


class Forged(LedgerError):
    """A signature does not verify under the key registered for that log and position."""


class ChainBroken(LedgerError):
    """Records are missing, inserted, reordered or do not link to the previous record."""

    def __init__(self, message: str, *, expected_seq: int | None = None) -> None:
        super().__init__(message)
        self.expected_seq = expected_seq
