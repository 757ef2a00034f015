"""Terminal drivers and their emulators: our device library.

Protocol code lives here and nowhere else; the appliance sees typed punches through the seam in
``firmware_bridge.types``. This package imports nothing of ours.
"""
