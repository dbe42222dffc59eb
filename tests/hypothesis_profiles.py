"""The suite's two hypothesis profiles, registered by ``tests/conftest.py``.

* ``ci`` (the default: the README's test command and ``.ci/run``) is deterministic. Every run
  draws the same examples (``derandomize``: the seed is a hash of the test), no example
  database is read or written, and no deadline turns a loaded machine into a failure. A run
  on a fresh clone is the same run as on CI, so a submission lands or not on its merits.
  The examples change only with the test itself or with the pinned hypothesis version.
* ``explore`` (``--hypothesis-profile=explore``, documented in ``fuzz/README.md``) draws new
  random examples on every run, keeps failures in ``.hypothesis/`` to replay them first, and
  multiplies every test's example count by ``CORTEX_EXPLORE_FACTOR`` (default 5). What it
  finds becomes an ``@example`` and a regression test, so ``ci`` runs it from then on.

Test modules size their properties with :func:`examples` so that one number says how many
examples a property runs under ``ci`` and ``explore`` scales it.
"""

from __future__ import annotations

import os

from hypothesis import settings

CI = "ci"
EXPLORE = "explore"
FACTOR_VARIABLE = "CORTEX_EXPLORE_FACTOR"


def register() -> None:
    """Register both profiles and load ``ci``; pytest's ``--hypothesis-profile`` may override it."""
    settings.register_profile(CI, derandomize=True, database=None, deadline=None, print_blob=True)
    settings.register_profile(EXPLORE, derandomize=False, deadline=None, print_blob=True)
    settings.load_profile(CI)


def explore_factor() -> int:
    raw = os.environ.get(FACTOR_VARIABLE, "5")
    try:
        factor = int(raw)
    except ValueError:
        raise SystemExit(f"{FACTOR_VARIABLE} must be a positive integer, got {raw!r}") from None
    if factor < 1:
        raise SystemExit(f"{FACTOR_VARIABLE} must be a positive integer, got {raw!r}")
    return factor


def examples(n: int) -> int:
    """``n`` examples under ``ci``; ``n`` times the explore factor under ``explore``.

    Called when a test module is imported, after pytest has loaded the profile it was asked for.
    """
    if settings.get_current_profile_name() == EXPLORE:
        return n * explore_factor()
    return n
