"""``python -m shearbridge ...``: see :mod:`shearbridge.cli`."""

from .cli import main

raise SystemExit(main())
