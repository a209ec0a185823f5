"""``python -m sista_kit.data.prepare DATASET --src RAW --out FOLDER``."""

import sys

from .cli import main

sys.exit(main())
