"""``python -m cortex_sal.cli``: the ``cortex-sal`` command."""

import sys

from . import main

sys.exit(main())
