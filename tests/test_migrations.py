"""Schema migrations from an empty database and from one made by the 0.1.0 schema (frozen SQL in
tests/fixtures), on the appliance's SQLite and the cloud's SQLite and PostgreSQL.

A migrated cloud database must end up with exactly the schema a new one gets (tables, columns with
their types, nullability and defaults, indexes, foreign keys), so a step forgotten in
``cloud.store.MIGRATIONS`` shows here and not at a customer's upgrade."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import peewee as pw
import pytest

from appliance import store as plant_store
from cloud import store as cloud_store
from opskit.migrations import SchemaTooNew, run_migrations, schema_version
from punchproof import __version__

FIXTURES = Path(__file__).parent / "fixtures"


def columns(path: Path) -> dict[str, set[str]]:
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: {r[1] for r in conn.execute(f'PRAGMA table_info("{t}")')} for t in tables}


def cloud_schema(url: str) -> dict[str, tuple[object, ...]]:
    """Every table of the cloud database at ``url`` as peewee reads it back from the engine's catalogue."""
    db = cloud_store.open_db(url, create=False)
    with db.connection_context():
        described = {
            table: (
                {c.name: (c.data_type, c.null, c.default) for c in db.get_columns(table)},
                {(i.name, tuple(i.columns), i.unique) for i in db.get_indexes(table)},
                {(f.column, f.dest_table, f.dest_column) for f in db.get_foreign_keys(table)},
            )
            for table in db.get_tables()
        }
    db.close()
    return described


def from_frozen(path: Path, schema: str) -> None:
    with sqlite3.connect(path) as conn:
        conn.executescript((FIXTURES / schema).read_text())


def test_an_empty_appliance_database_gets_every_migration(tmp_path):
    db = plant_store.open_db(tmp_path / "a.sqlite3")
    with db.connection_context():
        assert schema_version(db) == len(plant_store.MIGRATIONS) >= 1
        assert run_migrations(db, plant_store.MIGRATIONS) == [], "a second start applies nothing"
    db.close()


def test_a_0_1_0_appliance_database_is_migrated_with_its_rows_intact(tmp_path):
    old, new = tmp_path / "old.sqlite3", tmp_path / "new.sqlite3"
    from_frozen(old, "appliance_schema_0.1.0.sql")
    with sqlite3.connect(old) as conn:
        conn.execute("INSERT INTO log_record VALUES (0, 'boot', x'7b7d', x'00', x'01', 1772409600000)")
        conn.execute("INSERT INTO sync_state (id, acked_seq, connected, last_error) VALUES (1, 0, 0, '')")
    db = plant_store.open_db(old)
    with db.connection_context():
        assert schema_version(db) == len(plant_store.MIGRATIONS)
        assert plant_store.LogRecord.get_by_id(0).type == "boot"
        assert plant_store.SyncState.get_by_id(1).acked_seq == 0
        with pytest.raises(pw.IntegrityError, match="append-only"):
            plant_store.LogRecord.update(type="x").execute()
    db.close()
    plant_store.open_db(new).close()
    assert columns(old) == columns(new), "the same tables and columns as a database made today"


def test_a_database_from_a_newer_release_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "a.sqlite3"
    plant_store.open_db(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_version VALUES (99, 'from the future', 0)")
    before = columns(path)
    with pytest.raises(SchemaTooNew, match="newer punchproof"):
        plant_store.open_db(path)
    assert columns(path) == before


def test_steps_run_once_in_order_and_a_failing_step_leaves_nothing(tmp_path):
    db = pw.SqliteDatabase(str(tmp_path / "x.sqlite3"))
    ran: list[str] = []

    def step(name: str):
        return lambda d: (ran.append(name), d.execute_sql(f"CREATE TABLE {name} (x INTEGER)"))

    def broken(d: pw.Database) -> None:
        d.execute_sql("CREATE TABLE half_done (x INTEGER)")
        raise RuntimeError("step 3 fails")

    with db.connection_context():
        assert run_migrations(db, [("one", step("one")), ("two", step("two"))]) == [1, 2]
        with pytest.raises(RuntimeError):
            run_migrations(db, [("one", step("one")), ("two", step("two")), ("three", broken)])
        assert schema_version(db) == 2 and "half_done" not in db.get_tables(), "rolled back as one transaction"
        assert run_migrations(db, [("one", step("one")), ("two", step("two")), ("three", step("three"))]) == [3]
    assert ran == ["one", "two", "three"]


def test_the_cloud_database_migrates_from_empty(cloud_db_url):
    db = cloud_store.open_db(cloud_db_url)
    with db.connection_context():
        assert schema_version(db) == len(cloud_store.MIGRATIONS) >= 1
    db.close()
    db = cloud_store.open_db(cloud_db_url)  # a second start: nothing to do, nothing fails
    with db.connection_context():
        assert schema_version(db) == len(cloud_store.MIGRATIONS)
        db.execute_sql("INSERT INTO schema_version VALUES (99, 'from the future', 0)")
    db.close()
    with pytest.raises(SchemaTooNew):
        cloud_store.open_db(cloud_db_url)


def test_a_0_1_0_cloud_database_is_migrated(tmp_path):
    old, new = tmp_path / "old.sqlite3", tmp_path / "new.sqlite3"
    from_frozen(old, "cloud_schema_0.1.0.sql")
    with sqlite3.connect(old) as conn:
        conn.execute("INSERT INTO plant VALUES ('p1', '一厂', 'Asia/Shanghai')")
    cloud_store.open_db(f"sqlite:///{old}").close()
    cloud_store.open_db(f"sqlite:///{new}").close()
    assert cloud_schema(f"sqlite:///{old}") == cloud_schema(f"sqlite:///{new}")
    with sqlite3.connect(old) as conn:
        assert conn.execute("SELECT name FROM plant").fetchall() == [("一厂",)]
        assert conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] == len(cloud_store.MIGRATIONS)


def test_a_0_1_0_postgresql_cloud_database_is_migrated_with_its_rows_intact(postgres_url, postgres_server):
    import psycopg2

    old, new = postgres_url, postgres_server.create_database(f"new_{id(postgres_url)}")
    with psycopg2.connect(old) as conn, conn.cursor() as cur:  # pg_dump's output, as psql would restore it
        cur.execute((FIXTURES / "cloud_schema_0.1.0.postgres.sql").read_text(encoding="utf-8"))
    conn.close()
    assert "schema_version" not in cloud_schema(old) and "device_status" not in cloud_schema(old)

    db = cloud_store.open_db(old)
    with db.connection_context():
        assert schema_version(db) == len(cloud_store.MIGRATIONS)
        assert cloud_store.Plant.get_by_id("dongguan-1").name == "东莞一厂"
        punch = cloud_store.Punch.get()
        assert (punch.appliance.name, punch.seq, punch.employee, punch.at_utc_ms) == ("pi-01", 1, "1001", 1772409630000)
        assert bytes(cloud_store.LogRecord.get(seq=1).data) == b'{"employee":"1001"}'
        assert cloud_store.WitnessEntry.get_by_id(0).checkpoint.size == 2
        assert (cloud_store.Account.get_by_id("hr").plant, cloud_store.Account.get_by_id("hr").role) == ("", "hr_admin")
        # what the migrations were for: an entry witnessing the evidence log names no appliance checkpoint
        cloud_store.WitnessEntry.create(seq=1, checkpoint=None, evidence=7, data=b"{}", leaf=b"\x05" * 32)
        # the dump's sequences came along: a new row does not collide with the old ones
        assert cloud_store.Punch.create(**{**punch.__data__, "id": None, "seq": 2}).id == 2
    db.close()
    cloud_store.open_db(new).close()
    assert cloud_schema(old) == cloud_schema(new), "the same schema as a database made today"


def test_postgresql_checks_no_foreign_key_per_row_on_the_tables_written_a_million_rows_a_day(postgres_url):
    """Log records, punches and the escalation's day facts: the per-row checks were a third of ingest's work
    and 42 % of storing a group's day of facts; a fresh database and a migrated one both go without them."""
    db = cloud_store.open_db(postgres_url)
    with db.connection_context():
        rows = db.execute_sql(
            "SELECT conrelid::regclass::text FROM pg_constraint WHERE contype = 'f' "
            "AND conrelid::regclass::text IN ('log_record', 'punch', 'attendance_day')"
        ).fetchall()
        kept = db.execute_sql("SELECT count(*) FROM pg_constraint WHERE contype = 'f'").fetchone()[0]
    db.close()
    assert rows == [], rows
    assert kept > 0, "the other tables keep theirs"


def test_version_is_printed():
    result = subprocess.run(
        [sys.executable, "-m", "punchproof", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == f"punchproof {__version__}" and __version__ != "0+unknown"


def indexes(path: Path, table: str) -> dict[str, tuple[str, ...]]:
    with sqlite3.connect(path) as conn:
        names = [r[1] for r in conn.execute(f'PRAGMA index_list("{table}")') if not r[1].startswith("sqlite_")]
        return {n: tuple(r[2] for r in conn.execute(f'PRAGMA index_info("{n}")')) for n in names}


def test_the_board_reads_a_day_from_its_indexes_alone_in_a_migrated_database_as_in_a_new_one(tmp_path):
    """The board's reads of a whole day at every version (how many rows, which, yesterday's open shifts) read the
    day's index alone, and the rows changed since a version theirs (``board_row.changed``, appliance.web.dayrows),
    not a scan of the day's rows, reasons and all; a 0.1.0 database gets those indexes in place of the one on the
    date, and the column."""
    old, new = tmp_path / "old.sqlite3", tmp_path / "new.sqlite3"
    from_frozen(old, "appliance_schema_0.1.0.sql")
    assert "board_row_work_date" in indexes(old, "board_row")
    with sqlite3.connect(old) as conn:  # a day's rows there: the column comes to a table that has rows
        columns = [column[1] for column in conn.execute("PRAGMA table_info(board_row)")]
        rows = [{**dict.fromkeys(columns, 0), "work_date": "2026-03-02", "employee": f"{n}", "shift": "D",
                 "status": "present", "reason_zh": "正常", "reason_en": "Present"} for n in range(50)]  # fmt: skip
        conn.executemany(
            f"INSERT INTO board_row ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            [tuple(row.values()) for row in rows],
        )
    plant_store.open_db(old).close()
    plant_store.open_db(new).close()
    assert indexes(old, "board_row") == indexes(new, "board_row")
    assert sorted(indexes(new, "board_row").values()) == sorted([plant_store.DAY_COLUMNS, ("work_date", "changed")])
    with sqlite3.connect(old) as conn:
        assert conn.execute("SELECT count(*), max(changed) FROM board_row").fetchone() == (50, 0)
        conn.execute("UPDATE board_row SET changed = 3 WHERE employee = '7'")
        assert conn.execute(
            "SELECT employee FROM board_row WHERE work_date = '2026-03-02' AND changed > 2"
        ).fetchall() == [("7",)]
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    with sqlite3.connect(new) as conn:
        for sql in (
            "SELECT count(*) FROM board_row WHERE work_date = ?",
            "SELECT employee, shift FROM board_row WHERE work_date = ?",
            "SELECT rowid FROM board_row WHERE work_date = ? AND shift != '' AND tier != 'confirmed' "
            "ORDER BY start_ms, employee LIMIT 200",
        ):
            plan = " ".join(str(r[3]) for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", ("2026-03-02",)))
            assert "COVERING INDEX" in plan, (sql, plan)
        sql = "SELECT name, reason_zh FROM board_row WHERE work_date = ? AND changed > ?"
        plan = " ".join(str(r[3]) for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", ("2026-03-02", 7)))
        assert "USING INDEX board_row_work_date_changed (work_date=? AND changed>?)" in plan, plan
