"""``python -m sista_kit.downstream``: see :mod:`sista_kit.downstream.cli`."""

from sista_kit.downstream.cli import main

raise SystemExit(main())
