"""Set a few keys of one table in the appliance's TOML file, keeping the installer's comments and layout.

Lines are replaced or inserted in place; the result is parsed again and must hold exactly the values set,
or nothing is written. Files are replaced whole (temp file, fsync, rename), so a power cut leaves the
old file or the new one. (cloud/config_edit.py is its twin: the two sides share no code but ledger.)
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import tomllib
from pathlib import Path

Value = str | int | bool


def toml_value(value: Value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, ensure_ascii=False)  # JSON's escapes are TOML's


def set_keys(text: str, table: str, values: dict[str, Value]) -> str:
    lines = text.splitlines()
    header = re.compile(rf"^\s*\[\s*{re.escape(table)}\s*\]\s*(#.*)?$")
    start = next((i for i, line in enumerate(lines) if header.match(line)), None)
    if start is None:
        lines += ["", f"[{table}]"]
        start = len(lines) - 1
    end = next((i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("[")), len(lines))
    for key, value in values.items():
        line = f"{key} = {toml_value(value)}"
        own = re.compile(rf"^\s*{re.escape(key)}\s*=")
        found = next((i for i in range(start + 1, end) if own.match(lines[i])), None)
        if found is not None:
            lines[found] = line
            continue
        last = max([start] + [i for i in range(start + 1, end) if lines[i].strip()])
        lines.insert(last + 1, line)
        end += 1
    edited = "\n".join(lines) + "\n"
    try:
        section = tomllib.loads(edited).get(table, {})
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"[{table}] could not be edited safely: {err}") from err
    if any(section.get(key) != value for key, value in values.items()):
        raise ValueError(f"[{table}] could not be edited safely; set {', '.join(values)} by hand")
    return edited


def atomic_write(path: Path, data: bytes, mode: int, *, like: Path | None = None) -> None:
    """Replace ``path`` whole with ``mode``; owned like ``like`` (when run as root, e.g. under sudo)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        if like is not None and os.geteuid() == 0:
            owner = like.stat()
            os.chown(tmp, owner.st_uid, owner.st_gid)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
