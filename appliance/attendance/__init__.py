"""Attendance on the appliance: the evaluator thread of the daemon, and what it writes.

- ``evaluator.Evaluator``: every ``interval`` seconds, and soon after new punches are committed,
  evaluates today, yesterday (night shifts) and any past day not yet confirmed or asked for again,
  with the rules (``appliance.rules``), the master data (``roster_store``) and the terminals'
  watermarks (``watermarks``); writes the board (``board``) and appends confirmed day facts
  (``facts``); signs the actions the pages queue (``actions``).
"""

from appliance.attendance.evaluator import Evaluator, PassReport

__all__ = ["Evaluator", "PassReport"]
