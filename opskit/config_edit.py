"""Set a few keys of one table in a TOML file written by hand or by ``init``, keeping everything else.

Lines are replaced or inserted in place, so comments and the installer's own layout stay; the result
is parsed again and must hold exactly the values set, or nothing is written. Both sides use it
(``appliance join``, ``cloud register-appliance``); each writes the result its own way.
"""

from __future__ import annotations

import json
import re
import tomllib

Value = str | int | bool


def toml_value(value: Value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, ensure_ascii=False)  # JSON's escapes are TOML's


def toml_str(value: object) -> str:
    """A TOML basic string: JSON's escapes are TOML's, so a quote or backslash cannot break the file."""
    return toml_value(str(value))


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
