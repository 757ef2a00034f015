"""ADMS ("iclock") HTTP push: the receiver for terminals that only push, and an emulated terminal.

``receiver.AdmsReceiver`` is the WSGI app and its state, ``server.serve`` binds it to the plant
LAN interface within ``connections.Limits`` (how many connections, for how long, how large a
body), ``emulator.AdmsTerminalEmulator`` plays a push terminal over real HTTP.
"""
