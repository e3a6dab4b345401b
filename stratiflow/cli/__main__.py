"""``python -m stratiflow.cli``: the same as the ``stratiflow`` command."""

import sys

from stratiflow.cli.main import main

sys.exit(main())
