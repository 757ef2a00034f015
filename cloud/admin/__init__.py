"""What head office's administrator runs: the ``punchproof cloud`` commands, the broker's accounts and the doctor."""
