"""The launcher: one ``punchproof`` command for every process and tool, and the demo.

Nothing imports this package; it may import every other.
"""

from importlib import metadata

try:
    __version__ = metadata.version("punchproof")
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
