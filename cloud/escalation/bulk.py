"""Raw SQL for the tick's group reads and writes: one statement for many rows, built once per table.

Peewee builds each query from an expression tree, which costs far more than SQLite takes to run it
(about 0.3 ms a statement against tens of microseconds). The engine reads a group of cases in a few
queries and writes back what changed in a few multi-row statements; the SQL text comes from the
models' own field lists, so a column added to a model is written here too. Values pass through each
field's ``db_value``, as peewee would, so booleans and foreign keys reach both databases right.

A bulk update is an upsert on the primary key (``INSERT ... ON CONFLICT (id) DO UPDATE``), which
SQLite (3.24+) and PostgreSQL both run as one statement; it is used only for rows loaded under the
case's lock, whose every column we hold. Steps, which a dispatcher changes without that lock, are
updated with conditional statements instead (``cases.CaseBatch.flush``).
"""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any

import peewee as pw

from cloud.rows import copy_text
from cloud.store import database

MAX_PARAMS = 30_000  # below PostgreSQL's 65,535 and any SQLite built since 3.32 (32,766)


def sql(text: str) -> str:
    """``text`` written with ``?`` placeholders, for the database in use (psycopg2 wants ``%s``)."""
    return text if isinstance(database.obj, pw.SqliteDatabase) else text.replace("?", "%s")


def execute(text: str, params: Sequence[Any] = ()) -> Any:
    return database.obj.execute_sql(sql(text), tuple(params))


def marks(n: int) -> str:
    return ", ".join("?" * n)


def _max_params() -> int:
    db = database.obj
    if isinstance(db, pw.SqliteDatabase):
        return min(MAX_PARAMS, db.connection().getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
    return MAX_PARAMS


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def select_in(text: str, column_values: Sequence[Any], params: Sequence[Any] = ()) -> list[tuple]:
    """Run ``text`` (which ends in ``IN ({})``) once per chunk of ``column_values``; all rows."""
    out: list[tuple] = []
    for part in chunks(list(column_values), _max_params() - len(params)):
        out.extend(execute(text.format(marks(len(part))), [*params, *part]).fetchall())
    return out


@cache
def _fields(model: type[pw.Model], with_id: bool) -> tuple[pw.Field, ...]:
    return tuple(f for f in model._meta.sorted_fields if with_id or not isinstance(f, pw.AutoField))


def _default(field: pw.Field) -> Any:
    return field.default() if callable(field.default) else field.default


def complete(model: type[pw.Model], row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with every field it lacks set to the field's default (as a new model instance would be)."""
    for f in model._meta.sorted_fields:
        if f.name not in row:
            row[f.name] = _default(f)
    return row


PLAIN = frozenset({str, int, float, bool, bytes})  # passed to the driver as they are


def _values(fields: tuple[pw.Field, ...], rows: Sequence[dict[str, Any]]) -> list[Any]:
    out = []
    for row in rows:
        for f in fields:
            v = row[f.name] if f.name in row else _default(f)
            out.append(v if v is None or type(v) in PLAIN else f.db_value(v))
    return out


def rows_in(model: type[pw.Model], column: str, values: Sequence[Any], order: str = "id") -> list[dict[str, Any]]:
    """Whole rows whose ``column`` is in ``values``, as dicts by field name (booleans as bool)."""
    fields = _fields(model, with_id=True)
    names = [f.name for f in fields]
    flags = [f.name for f in fields if isinstance(f, pw.BooleanField)]
    columns = ", ".join(f'"{f.column_name}"' for f in fields)
    out = []
    for row in select_in(
        f'SELECT {columns} FROM "{model._meta.table_name}" WHERE "{column}" IN ({{}}) ORDER BY "{order}"', values
    ):
        item = dict(zip(names, row, strict=True))
        for name in flags:
            item[name] = bool(item[name]) if item[name] is not None else None
        out.append(item)
    return out


def instances(model: type[pw.Model], column: str, values: Sequence[Any], *, tail: str = "") -> list[pw.Model]:
    """Model instances whose ``column`` is in ``values``, in id order, as peewee would make them (foreign keys as
    their ids, booleans as bool) without building each from its query's expression tree: some twenty times
    cheaper for a group of cases. ``tail``: SQL after the ``ORDER BY`` (" FOR UPDATE")."""
    fields = _fields(model, with_id=True)
    names = [f.name for f in fields]
    flags = [f.name for f in fields if isinstance(f, pw.BooleanField)]
    columns = ", ".join(f'"{f.column_name}"' for f in fields)
    text = f'SELECT {columns} FROM "{model._meta.table_name}" WHERE "{column}" IN ({{}}) ORDER BY "id"{tail}'
    out = []
    for row in select_in(text, values):
        instance = model.__new__(model)
        data = dict(zip(names, row, strict=True))
        for name in flags:
            if data[name] is not None:
                data[name] = bool(data[name])
        instance.__data__, instance._dirty, instance.__rel__ = data, set(), {}
        out.append(instance)
    return out


def where_in(column: str, values: Sequence[Any]) -> pw.SQL:
    """``column IN (...)`` as one SQL node: peewee's ``in_`` makes a node per value, which costs
    milliseconds for a few thousand."""
    return pw.SQL(sql(f'"{column}" IN ({marks(len(values))})'), list(values))


def insert(
    model: type[pw.Model],
    rows: Sequence[dict[str, Any]],
    *,
    ignore: bool = False,
    upsert_on: tuple[str, ...] = (),
    also_set: str = "",
    returning: str = "",
    with_id: bool = False,
) -> list[tuple]:
    """Insert ``rows`` (dicts by field name; missing fields take their default) in multi-row statements (on
    PostgreSQL, a plain insert by COPY: ``_copy``).

    ``ignore`` skips rows a unique index refuses (``ON CONFLICT DO NOTHING``); ``upsert_on`` names the
    unique columns whose stored row takes the new values instead (and ``also_set``, SQL); ``returning``
    names columns to read back from the rows written; ``with_id``: the rows give their ids too."""
    if not rows:
        return []
    fields = _fields(model, with_id=with_id)
    if not (ignore or upsert_on or returning) and not isinstance(database.obj, pw.SqliteDatabase):
        _copy(model, fields, rows)
        return []
    table = model._meta.table_name
    columns = ", ".join(f'"{f.column_name}"' for f in fields)
    row_marks = f"({marks(len(fields))})"
    tail = " ON CONFLICT DO NOTHING" if ignore else ""
    if upsert_on:
        sets = [f'"{f.column_name}" = excluded."{f.column_name}"' for f in fields if f.name in rows[0]]
        keys = ", ".join(f'"{c}"' for c in upsert_on)
        tail = f" ON CONFLICT ({keys}) DO UPDATE SET {', '.join([*sets, *([also_set] if also_set else [])])}"
    tail += f" RETURNING {returning}" if returning else ""
    out: list[tuple] = []
    for part in chunks(list(rows), max(1, _max_params() // len(fields))):
        text = f'INSERT INTO "{table}" ({columns}) VALUES {", ".join([row_marks] * len(part))}{tail}'
        cursor = execute(text, _values(fields, part))
        if returning:
            out.extend(cursor.fetchall())
    return out


def _copy(model: type[pw.Model], fields: tuple[pw.Field, ...], rows: Sequence[dict[str, Any]]) -> None:
    """PostgreSQL: ``rows`` by COPY, which the server takes in far less than the same rows as a 30,000-parameter
    ``INSERT ... VALUES`` it has to parse (a new case's timeline entries, steps and days, tens of thousands a
    morning). Its errors are peewee's, as ``execute``'s are."""
    values = _values(fields, rows)
    n = len(fields)
    text = copy_text([tuple(values[i : i + n]) for i in range(0, len(values), n)])
    columns = ", ".join(f'"{f.column_name}"' for f in fields)
    with pw.__exception_wrapper__:
        database.obj.cursor().copy_expert(f'COPY "{model._meta.table_name}" ({columns}) FROM STDIN', io.StringIO(text))


def upsert(model: type[pw.Model], rows: Sequence[dict[str, Any]]) -> None:
    """Write whole rows back by primary key, many per statement."""
    fields = _fields(model, with_id=True)
    pk = model._meta.primary_key.column_name
    columns = ", ".join(f'"{f.column_name}"' for f in fields)
    updates = ", ".join(f'"{f.column_name}" = excluded."{f.column_name}"' for f in fields if not f.primary_key)
    row_marks = f"({marks(len(fields))})"
    for part in chunks(list(rows), max(1, _max_params() // len(fields))):
        execute(
            f'INSERT INTO "{model._meta.table_name}" ({columns}) VALUES {", ".join([row_marks] * len(part))} '
            f'ON CONFLICT ("{pk}") DO UPDATE SET {updates}',
            _values(fields, part),
        )


def row_of(instance: pw.Model) -> dict[str, Any]:
    """A model instance's values by field name (foreign keys as their ids), for ``upsert``."""
    return {f.name: instance.__data__.get(f.name) for f in instance._meta.sorted_fields}
