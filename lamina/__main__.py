"""``python -m lamina``: the same as the ``lamina`` command."""

import sys

from lamina.cli.main import main

sys.exit(main())
