"""Cortex SAL: a custody-first shield between biometric sensors and AI applications."""

__version__ = "0.1.0"

import logging as _logging

# a library logs; the application decides where it goes (the CLI configures it)
_logging.getLogger("cortex_sal").addHandler(_logging.NullHandler())
