"""RFC 3161 timestamps for the cloud's witness log (the client arrives with the TSA work)."""


class TimestampError(Exception):
    """The timestamp authority could not stamp, or its answer does not verify."""
