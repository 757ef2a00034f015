"""Sync with head office: the uplink of signed batches over MQTT, the configuration pushed down, and joining."""
