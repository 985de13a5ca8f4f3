"""``python -m tapead``: the command line (see tapead.cli)."""

import sys

from tapead.cli import main

sys.exit(main())
