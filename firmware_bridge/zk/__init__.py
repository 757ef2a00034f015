"""The ZKTeco "standalone" protocol (TCP/UDP port 4370): wire codec, driver over pyzk, emulator."""
