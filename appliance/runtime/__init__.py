"""The appliance process: the daemon that runs capture, attendance and sync together, and its lock."""
