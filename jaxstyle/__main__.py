"""``python -m jaxstyle``."""

import sys

from jaxstyle.cli import main

sys.exit(main())
