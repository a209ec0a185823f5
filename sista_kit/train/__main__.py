"""``python -m sista_kit.train``: see :mod:`sista_kit.train.cli`."""

import sys

from sista_kit.train.cli import main

sys.exit(main())
