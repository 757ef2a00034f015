"""What the plant's IT person runs: the ``punchproof appliance`` commands, the set-up wizard, the doctor and backups."""
