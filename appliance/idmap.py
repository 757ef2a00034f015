"""The tables that say whose card, or whose finger, a reader read: CSV files the plant keeps.

A card reader reports a card number and an R30x module a page of its library, never a worker:
the plant keeps a two-column table (card or page, then the employee's badge number), usually
exported from a spreadsheet as CSV (UTF-8, with or without Excel's byte-order mark). Blank lines
and lines starting with ``#`` are ignored; a first row naming the columns is skipped. Every bad
line is reported with its number, so the file is fixed in one go.

Card numbers are written as the reader's canonical id: the number in decimal (``12345678``;
leading zeros do not matter) or ``facility,number`` for Wiegand 26 (quoted in CSV: ``"123,45678"``).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from firmware_bridge.readers.cards import canonical_card

CARD_ID = re.compile(r"\d{1,10}|\d{1,3},\d{1,5}")
HEADERS = {"card", "卡号", "page", "页码", "指纹页", "card_id", "page_id"}
MAX_EMPLOYEE = 24  # the terminals' user id field, in bytes

K = TypeVar("K", str, int)


class IdMapError(Exception):
    def __init__(self, path: Path, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))


def load_cards(path: Path) -> dict[str, str]:
    """Canonical card id -> employee; ``IdMapError`` listing every bad line."""
    return _load(path, "card", _card)


def load_pages(path: Path) -> dict[int, str]:
    """R30x library page -> employee; ``IdMapError`` listing every bad line."""
    return _load(path, "page", _page)


def _card(text: str) -> str:
    compact = text.replace(" ", "")
    if not CARD_ID.fullmatch(compact):
        raise ValueError(f"卡号 {text!r} 格式不对 / {text!r} is not a card number (digits, or facility,number)")
    return canonical_card(compact)


def _page(text: str) -> int:
    if not text.isdigit() or int(text) > 0xFFFF:
        raise ValueError(f"指纹页 {text!r} 不是 0–65535 的数字 / page {text!r} is not a number from 0 to 65535")
    return int(text)


def _load(path: Path, what: str, parse: Callable[[str], K]) -> dict[K, str]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as err:
        raise IdMapError(path, [f"cannot read the {what} table: {err.strerror or err}"]) from err
    except UnicodeDecodeError as err:
        raise IdMapError(path, [f"not UTF-8 text (save it as 'CSV UTF-8'): {err.reason} at byte {err.start}"]) from err
    table: dict[K, str] = {}
    problems: list[str] = []
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if number == 1 and cells[0].lower() in HEADERS:
            continue
        if len(cells) < 2 or not cells[1]:
            problems.append(f"line {number}: needs two columns, {what} and employee")
            continue
        try:
            key = parse(cells[0])
        except ValueError as err:
            problems.append(f"line {number}: {err}")
            continue
        employee = cells[1]
        if len(employee.encode("utf-8")) > MAX_EMPLOYEE or not employee.isprintable():
            problems.append(f"line {number}: {employee!r} is not a badge number")
        elif key in table and table[key] != employee:
            problems.append(f"line {number}: {what} {cells[0]} is given to both {table[key]} and {employee}")
        else:
            table[key] = employee
    if problems:
        raise IdMapError(path, problems)
    return table
