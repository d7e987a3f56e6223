"""``python -m har``: see :mod:`har.cli`."""

import sys

from har.cli import main

sys.exit(main())
