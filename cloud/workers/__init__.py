"""The processes head office runs beside its pages: the ingest worker, the escalation runner and
the evidence export jobs."""
