"""Configuration from the environment, for containers: ``PUNCHPROOF_<SIDE>__<SECTION>__<KEY>``.

``PUNCHPROOF_APPLIANCE__MQTT__HOST=broker`` sets ``[mqtt] host`` of the appliance's file;
``PUNCHPROOF_CLOUD__DATABASE__URL=postgresql://...`` sets ``[database] url`` of the cloud's. An array
of tables takes an index: ``PUNCHPROOF_APPLIANCE__TERMINALS__0__HOST``. Names are matched without
regard to case. Each side has its own prefix, so one environment (a test, the demo) can hold both
sides' settings without one side reading the other's.

A value is text; it is converted to the type the key has in the file (int, float, bool: true/false,
1/0, yes/no) and the result is then checked exactly like the file, so a bad value is reported with the
variable's name. Where each value came from (file, environment, default) is kept for ``show-config``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TRUE, FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}
DEFAULT = "default"


@dataclass(frozen=True)
class Override:
    variable: str  # PUNCHPROOF_APPLIANCE__MQTT__HOST
    path: tuple[str, ...]  # ("mqtt", "host"); ("terminals", "0", "host")
    text: str

    @property
    def origin(self) -> str:
        return f"env {self.variable}"

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


def prefix_for(side: str) -> str:
    return f"PUNCHPROOF_{side.upper()}__"


def overrides(environ: Mapping[str, str], side: str) -> list[Override]:
    """The side's variables, sorted by name (so the result does not depend on the environment's order)."""
    prefix = prefix_for(side)
    found = []
    for name in sorted(environ):
        if name.upper().startswith(prefix):
            path = tuple(part.lower() for part in name[len(prefix) :].split("__"))
            found.append(Override(name, path, environ[name]))
    return found


def convert(override: Override, kind: str) -> Any:
    """``override``'s text as a value of ``kind`` (the key's type as written in its dataclass)."""
    text = override.text.strip()
    base = kind.removesuffix(" | None")
    try:
        if base == "str":
            return override.text
        if base == "int":
            return int(text, 0)
        if base == "float":
            return float(text)
        if base == "bool" and text.lower() in TRUE | FALSE:
            return text.lower() in TRUE
    except ValueError as err:
        raise ValueError(f"{override.variable}: expected {base}, got {override.text!r}") from err
    raise ValueError(f"{override.variable}: expected {base} (true or false), got {override.text!r}")


def render(rows: list[tuple[str, Any, str]], *, as_json: bool = False) -> str:
    """``key = value  # origin`` lines, values in TOML notation, aligned for reading; or JSON
    ``{key: {"value": ..., "from": origin}}``."""
    if as_json:
        return json.dumps({key: {"value": v, "from": origin} for key, v, origin in rows}, ensure_ascii=False, indent=2)

    def shown(value: Any) -> str:
        if isinstance(value, bool):
            return str(value).lower()
        if value is None:
            return "(none)"
        return json.dumps(value, ensure_ascii=False)

    lines = [(f"{key} = {shown(value)}", origin) for key, value, origin in rows]
    width = max((len(text) for text, _ in lines), default=0)
    return "\n".join(f"{text:<{width}}  # {origin}" for text, origin in lines)
