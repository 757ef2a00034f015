"""Online backup and restore of the appliance: the database and the log-signing key, in one file.

``backup`` uses SQLite's online backup API in a single step, which is one read transaction: the
copy is the database as of one commit, while the daemon keeps writing (WAL lets it). The key goes
with it, since a restored log can only be continued by the key that signed it; the archive is
therefore as secret as the key (mode 0600).

``restore`` refuses while the daemon runs (it holds ``daemon.lock``), checks the archive's
database before touching anything, keeps the current files beside the restored ones, and removes
the old write-ahead log so it cannot be replayed onto the restored database. A restored appliance
that is older than what the cloud holds finds out at its first acknowledgement: the sync halts
with "restored from an old backup" instead of forking its signed log.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from appliance.config import Settings
from appliance.identity import pending_key_path
from appliance.runtime.daemonlock import daemon_lock
from opskit.sqlite_check import quick_check

DB_NAME = "appliance.sqlite3"
KEY_NAME = "log-signing.pem"
MANIFEST = "manifest.json"


class BackupError(Exception):
    pass


@dataclass(frozen=True)
class BackupInfo:
    head_seq: int
    acked_seq: int
    created: str
    path: Path


def backup(settings: Settings, output: Path) -> BackupInfo:
    """Write the archive (tar: manifest, database, key) to ``output``, atomically, mode 0600."""
    if not settings.db_path.exists():
        raise BackupError(f"{settings.db_path} does not exist: nothing to back up")
    output = output.resolve()
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=".pp-backup-") as work:
        copy = Path(work) / DB_NAME
        source = sqlite3.connect(f"file:{settings.db_path}?mode=ro", uri=True, timeout=30)
        target = sqlite3.connect(copy)
        try:
            source.backup(target)  # pages=-1: the whole database in one step, one read transaction
            head = target.execute("SELECT coalesce(max(seq), -1) FROM log_record").fetchone()[0]
            acked = target.execute("SELECT acked_seq FROM sync_state").fetchone()[0]
        finally:
            target.close()
            source.close()
        created = datetime.now(UTC).isoformat(timespec="seconds")
        manifest = {"created": created, "head_seq": head, "acked_seq": acked, "log": settings.log_origin}
        partial = Path(work) / "archive.tar"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle, tarfile.open(fileobj=handle, mode="w") as tar:
            data = json.dumps(manifest, ensure_ascii=False, indent=2).encode()
            entry = tarfile.TarInfo(MANIFEST)
            entry.size = len(data)
            tar.addfile(entry, io.BytesIO(data))
            tar.add(copy, DB_NAME)
            for key in (settings.key_path, pending_key_path(settings.key_path)):
                if key.exists():
                    tar.add(key, f"keys/{key.name}")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, output)
    return BackupInfo(head, acked, created, output)


def restore(settings: Settings, archive: Path) -> BackupInfo:
    """Put the archive's database and key in place; refuses while the daemon runs."""
    with daemon_lock(settings) as free:
        if not free:
            raise BackupError(
                "守护进程正在运行，未恢复 / the appliance daemon is running; stop it first "
                "(sudo systemctl stop punchproof-appliance punchproof-appliance-web)"
            )
        with tempfile.TemporaryDirectory(dir=settings.state_dir, prefix=".pp-restore-") as work:
            staged = Path(work)
            manifest = _unpack(archive, staged)
            _check_database(staged / DB_NAME)
            if not (staged / "keys" / KEY_NAME).exists():
                raise BackupError(f"{archive} holds no log-signing key: it cannot continue the signed log")
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            for path in (settings.db_path, settings.key_path, pending_key_path(settings.key_path)):
                if path.exists():
                    os.replace(path, path.with_name(f"{path.name}.before-restore-{stamp}"))
            for suffix in ("-wal", "-shm"):  # the old database's write-ahead log must not meet the restored file
                Path(f"{settings.db_path}{suffix}").unlink(missing_ok=True)
            settings.key_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            for name in os.listdir(staged / "keys"):
                os.replace(staged / "keys" / name, settings.key_path.parent / name)
            os.replace(staged / DB_NAME, settings.db_path)
            _fsync_dir(settings.key_path.parent)
            _fsync_dir(settings.state_dir)
    return BackupInfo(manifest["head_seq"], manifest["acked_seq"], manifest["created"], archive)


def _unpack(archive: Path, into: Path) -> dict:
    allowed = {MANIFEST, DB_NAME, f"keys/{KEY_NAME}", f"keys/{KEY_NAME}.next"}
    try:
        with tarfile.open(archive, mode="r") as tar:
            members = tar.getmembers()
            strange = [m.name for m in members if m.name not in allowed or not m.isfile()]
            if strange:
                raise BackupError(f"{archive} is not a punchproof backup (unexpected {', '.join(strange)})")
            tar.extractall(into, filter="data")
    except (OSError, tarfile.TarError) as err:
        raise BackupError(f"cannot read {archive}: {err}") from err
    try:
        return json.loads((into / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise BackupError(f"{archive} has no readable manifest: {err}") from err


def _check_database(path: Path) -> None:
    result = quick_check(path)
    if result != ["ok"]:
        raise BackupError(f"the backup's database is damaged ({'; '.join(result[:3])}); nothing was changed")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
