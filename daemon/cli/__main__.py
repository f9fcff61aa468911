"""`python -m casegate.daemon.cli`."""

import sys

from casegate.daemon.cli import main

sys.exit(main())
