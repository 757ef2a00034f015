"""Whole numbers taken from a request's address, bounded: a bad one is a 400 that says what is wrong.

Before, ``/kiosk/feed?after=99999999999999999999999`` (no login needed) reached SQLite, which cannot
hold it (OverflowError, a 500), and so did ``/cases/<huge id>``; ``"²".isdigit()`` is true but
``int("²")`` fails. Here a number is ASCII digits with an optional minus, within the bounds the
caller names; anything else is refused before a query is made, with a plain-text 400 saying which
part of the address was wrong and what it must be.

- ``query_int(name, default, lo=, hi=)`` reads ``?name=`` (absent or empty: ``default``);
- ``whole_number(text, name, lo=, hi=)`` parses a header's or a form's number the same way;
- ``bound_path_ints(app)`` makes every ``<int:...>`` in the app's routes refuse a number above
  ``MAX_ID`` (call it before the blueprints are registered).
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask, request
from werkzeug.exceptions import BadRequest
from werkzeug.routing import IntegerConverter

MAX_ID = 2**63 - 1  # SQLite's INTEGER and PostgreSQL's bigint: no id or seq is larger
MAX_PAGE = 1_000_000  # a page number of a list: far past any list's end, far from an overflowing offset
_NUMBER = re.compile(r"-?[0-9]{1,20}")


class PlainBadRequest(BadRequest):
    """A 400 whose body is its description as plain text (no HTML page around an internal code)."""

    def get_body(self, environ: Any = None, scope: Any = None) -> str:
        return f"{self.description}\n"

    def get_headers(self, environ: Any = None, scope: Any = None) -> list[tuple[str, str]]:
        return [("Content-Type", "text/plain; charset=utf-8")]


def bad_number(name: str, lo: int, hi: int) -> PlainBadRequest:
    """The refusal of ``name``'s value (not echoed: it may be megabytes, or meant for another reader)."""
    return PlainBadRequest(
        f"请求中的 {name} 应为 {lo} 到 {hi} 之间的整数 / {name} in the request must be a whole number from {lo} to {hi}"
    )


def whole_number(text: str, name: str, *, lo: int, hi: int) -> int:
    """``text`` as an integer in ``[lo, hi]``; otherwise ``PlainBadRequest`` (400) naming ``name``."""
    text = text.strip()
    if not _NUMBER.fullmatch(text):
        raise bad_number(name, lo, hi)
    value = int(text)
    if not lo <= value <= hi:
        raise bad_number(name, lo, hi)
    return value


def query_int(name: str, default: int, *, lo: int, hi: int) -> int:
    """``?name=`` of the current request as an integer in ``[lo, hi]``; ``default`` when absent or empty."""
    text = request.args.get(name, "")
    return default if text == "" else whole_number(text, name, lo=lo, hi=hi)


class BoundedInt(IntegerConverter):
    """``<int:...>`` that refuses (400) a number above ``MAX_ID`` instead of handing it to the database."""

    def to_python(self, value: str) -> int:
        if len(value) > 19 or int(value) > MAX_ID:
            raise PlainBadRequest(f"网址中的编号超出范围 / a number in the address is larger than {MAX_ID}")
        return super().to_python(value)  # type: ignore[no-any-return]


def bound_path_ints(app: Flask) -> None:
    """Every ``<int:...>`` of ``app``'s routes registered from now on is a ``BoundedInt``."""
    app.url_map.converters["int"] = BoundedInt
