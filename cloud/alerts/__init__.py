"""Missed check-in alerts at head office (#20.1): read from the plants' logs, sent to line managers and HR."""
