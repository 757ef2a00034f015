"""What card readers and Wiegand-to-RS232 converters print, one card per line.

Vendors differ (decimal or hex, facility code kept or dropped, CR or CRLF, STX/ETX framing), so
the line format is configuration: a named format or a regular expression with a ``card`` group
(and optionally ``facility``). Every format yields the same canonical card id, the one the
card table is keyed by: the card number in decimal, or ``facility,number`` for Wiegand 26.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FRAMING = b"\x02\x03"  # STX/ETX around the number on RDM6300-style readers


@dataclass(frozen=True, slots=True)
class CardFormat:
    name: str
    pattern: re.Pattern[str]  # groups: card (or bits), optionally facility
    base: int = 10

    def parse(self, line: bytes) -> str:
        """The canonical card id in ``line``; ``ValueError`` saying why when there is none."""
        try:
            text = line.strip().strip(FRAMING).strip().decode("ascii")
        except UnicodeDecodeError as err:
            raise ValueError(f"not ASCII text (byte {err.start})") from err
        match = self.pattern.fullmatch(text)
        if match is None:
            raise ValueError(f"{text[:40]!r} is not a card number in the {self.name} format")
        groups = match.groupdict()
        if groups.get("bits") is not None:
            return _wiegand26_bits(groups["bits"])
        number = int(groups["card"], self.base)
        facility = groups.get("facility")
        return f"{int(facility, self.base)},{number}" if facility is not None else str(number)


def _wiegand26_bits(bits: str) -> str:
    """``P FFFFFFFF NNNNNNNNNNNNNNNN P``: even parity over the first 13 bits, odd over the last 13."""
    if bits[:13].count("1") % 2 != 0 or bits[13:].count("1") % 2 != 1:
        raise ValueError(f"Wiegand 26 parity error in {bits}")
    return f"{int(bits[1:9], 2)},{int(bits[9:25], 2)}"


FORMATS = {
    "decimal": CardFormat("decimal", re.compile(r"(?P<card>\d{1,10})")),  # e.g. 10 digits + CR LF
    "hex": CardFormat("hex", re.compile(r"(?P<card>[0-9A-Fa-f]{2,10})"), 16),
    # 24 data bits as six hex digits (WG2RS232-style converters): facility byte, card u16
    "wiegand26-hex": CardFormat(
        "wiegand26-hex", re.compile(r"(?P<facility>[0-9A-Fa-f]{2})(?P<card>[0-9A-Fa-f]{4})"), 16
    ),
    # the 26 raw bits, parity included, as 0/1 characters
    "wiegand26-bits": CardFormat("wiegand26-bits", re.compile(r"(?P<bits>[01]{26})")),
    # facility and card in decimal, as printed on the card: "123,45678" or "123:45678"
    "facility-card": CardFormat("facility-card", re.compile(r"(?P<facility>\d{1,3})[,:/ ](?P<card>\d{1,5})")),
}


def card_format(spec: str, *, base: int = 10) -> CardFormat:
    """A named format, or ``regex:<pattern>`` with a ``card`` group (and maybe ``facility``)."""
    if spec in FORMATS:
        return FORMATS[spec]
    if spec.startswith("regex:"):
        try:
            pattern = re.compile(spec[len("regex:") :])
        except re.error as err:
            raise ValueError(f"card format {spec!r}: not a regular expression ({err})") from err
        if "card" not in pattern.groupindex:
            raise ValueError(f"card format {spec!r}: the expression needs a (?P<card>...) group")
        return CardFormat(spec, pattern, base)
    raise ValueError(f"unknown card format {spec!r}; use one of {', '.join(FORMATS)} or regex:<pattern>")


def canonical_card(card: str) -> str:
    """Card-table keys normalised as reads are: ``0012345678`` and ``12345678`` are one card."""
    facility, sep, number = card.strip().partition(",")
    if sep:
        return f"{int(facility)},{int(number)}"
    return str(int(card)) if card.strip().isdigit() else card.strip()
