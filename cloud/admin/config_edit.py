"""Set a few keys of one table of ``cloud.toml`` in place (``opskit.config_edit``), written atomically."""

from __future__ import annotations

from pathlib import Path

from cloud.appliances.broker_auth import atomic_write
from opskit.config_edit import Value, set_keys


def update_file(path: Path, table: str, values: dict[str, Value]) -> None:
    atomic_write(path, set_keys(path.read_text(encoding="utf-8"), table, values))
