"""Suite-wide set-up: the hypothesis profiles (``tests/hypothesis_profiles.py``) and the
shared KEROS v2 world (``tests/v2_world.py``).

``ci`` is loaded here, before any test module is imported, so the README's test command is
deterministic; ``--hypothesis-profile=explore`` replaces it when pytest configures itself.
"""

from collections.abc import Iterator

import pytest

from hypothesis_profiles import register
from v2_world import World, make_world

register()


@pytest.fixture
def world() -> Iterator[World]:
    """Two CAs, trust, a manual clock and a certified sensor and gateway; keys purged after."""
    yield from make_world()
