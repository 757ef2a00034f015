import sys

from punchproof.cli import main

sys.exit(main())
