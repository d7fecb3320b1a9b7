"""``python -m shearbridge ...``: see :mod:`shearbridge.cli`."""

from shearbridge.cli import main

raise SystemExit(main())
