"""The one error the rules raise: the configuration or the data handed in cannot be reasoned about."""

from __future__ import annotations


class RulesError(ValueError):
    """A shift, roster, calendar file or record that does not make sense; the message says which."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = problems or [message]
        super().__init__(message)
