"""Suite-wide set-up: the hypothesis profiles (``tests/hypothesis_profiles.py``), the
shared KEROS v2 world (``tests/v2_world.py``) and ``fuzz/`` on ``sys.path``, once, so that the
fuzz properties import the targets of ``fuzz/fuzzlib/`` as ``import fuzzlib``.

liblsl is put on the machine scope (``LSLAPICFG``, ``cortex_sal.sources.lsl.use_machine_scope``)
before any test imports pylsl. ``ci`` is loaded here, before any test module is imported, so the
README's test command is deterministic; ``--hypothesis-profile=explore`` replaces it when pytest configures itself.
"""

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cortex_sal.sources.lsl import use_machine_scope
from hypothesis_profiles import register
from v2_world import World, make_world

# liblsl on the machine scope for every test, before anything imports pylsl (liblsl reads its
# configuration once, at first use): nothing multicasts to the site network (docs/sources.md)
use_machine_scope()
assert os.environ["LSLAPICFG"].endswith("lsl_machine.cfg")

register()

FUZZ = str(Path(__file__).resolve().parents[1] / "fuzz")
if FUZZ not in sys.path:
    sys.path.insert(0, FUZZ)


@pytest.fixture
def world() -> Iterator[World]:
    """Two CAs, trust, a manual clock and a certified sensor and gateway; keys purged after."""
    yield from make_world()
