"""Capture: reading the terminals (ZKTeco polling, push-mode HTTP, serial readers), stamping and signing
each punch into the appliance's log."""
