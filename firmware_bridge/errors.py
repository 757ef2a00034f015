"""The ways a terminal can fail us, each chained to its cause."""


class TerminalError(Exception):
    """Base class for every terminal failure."""


class TerminalUnreachable(TerminalError):
    """No answer: host down, port closed, timeout, or the connection dropped."""


class TerminalAuthFailed(TerminalError):
    """The terminal refused our comm key."""


class TerminalProtocolError(TerminalError):
    """The terminal answered, but not as the protocol says (or it is not a ZK terminal)."""


class TerminalLogChanged(TerminalError):
    """The terminal's log is not what the caller acknowledged, so it was left alone (not cleared)."""
