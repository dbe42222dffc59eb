"""Suite-wide set-up: the hypothesis profiles (``tests/hypothesis_profiles.py``).

``ci`` is loaded here, before any test module is imported, so the README's test command is
deterministic; ``--hypothesis-profile=explore`` replaces it when pytest configures itself.
"""

from hypothesis_profiles import register

register()
