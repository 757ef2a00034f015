"""The escalation's tables keep no index that another index of the same table starts with: such an index
serves no query the longer one does not, and every row the morning tick stores (a million day facts, tens of
thousands of cases with their steps, days and timeline entries) paid another B-tree update for it."""

from __future__ import annotations

from cloud.escalation.models import AbsenceCase, AttendanceDay, CaseDay, CaseEntry, CaseStep
from cloud.store import open_db

TABLES = [m._meta.table_name for m in (AttendanceDay, AbsenceCase, CaseDay, CaseStep, CaseEntry)]


def test_no_index_is_the_start_of_another(cloud_db_url):
    db = open_db(cloud_db_url)
    try:
        for table in TABLES:
            indexes = {i.name: tuple(i.columns) for i in db.get_indexes(table)}
            assert indexes, table
            for name, columns in indexes.items():
                longer = [o for o, cols in indexes.items() if o != name and cols[: len(columns)] == columns]
                assert not longer, f"{table}: {name} {columns} is the start of {longer}"
    finally:
        db.close()


def test_the_queries_by_plant_case_and_status_still_have_an_index(cloud_db_url):
    db = open_db(cloud_db_url)
    try:
        starts = {(t, tuple(i.columns)[0]) for t in TABLES for i in db.get_indexes(t)}
        for table, column in [
            ("attendance_day", "plant_id"),
            ("absence_case", "plant_id"),
            ("case_day", "case_id"),
            ("case_step", "case_id"),
            ("case_step", "status"),
            ("case_entry", "case_id"),
        ]:
            assert (table, column) in starts, (table, column)
    finally:
        db.close()
