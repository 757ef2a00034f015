"""The cloud service: verifies and stores the appliances' signed logs, runs the escalation of
absences, and shows head office what every plant recorded. Imports ``ledger`` and ``opskit`` and
nothing else of ours.

Grouped by what each part owns, top to bottom (a group imports only those below it): ``admin``;
``web``; ``workers``; ``evidence`` | ``plantconfig``; ``escalation``; ``hr`` | ``ingest``;
``appliances``; ``notices`` | ``channels``. The modules at this root (clock, config, store, rows,
accounts, audit, witness, keyfile, report_font) are shared by every group."""
