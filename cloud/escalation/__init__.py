"""Absence cases and the escalation engine (ESCALATION.md §3.2).

- ``policy``: the handbook's rules, versioned (a new version never edits an old one);
- ``models``: cases, their counted days, planned steps, gates, tasks and the timeline;
- ``facts``: confirmed day facts from the plants' signed logs, projected per badge and shift;
- ``ladder``: the pure decisions: what a case's next transitions are, given its facts and the time;
- ``engine``: one tick: read new facts, re-count, advance, fire timers, dispatch steps, at most once;
- ``actions``: what people do: acknowledge, approve, confirm, record service, resolve;
- ``sender``: the seam to the channels (``Sender.send(step)``).
"""
