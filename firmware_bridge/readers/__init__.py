"""Serial readers through pyserial: card / Wiegand line readers and R30x fingerprint modules.

Named ``readers`` so it never shadows pyserial's ``serial``. Every reader opens a
``serial.serial_for_url`` URL (a tty path, ``socket://``, ``rfc2217://``), reconnects when the
port goes away, and has no clock of its own: its punches carry the appliance's time.
"""
