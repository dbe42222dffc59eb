"""The seed's entry point: ``python src/sal/cognitive_shield_v2.py --test`` runs the SAL
vectors; without ``--test`` it runs a short demo. Thin: everything is in ``cortex_sal``.

``CognitiveShield`` here is the seed's: its results are the seed's dicts
(``{"status": "ok" | "refused" | "registered" | "destroyed", ...}``), an adapter
(:func:`cortex_sal.sal.seed.to_seed_dict`) over the library's typed results
(:mod:`cortex_sal.sal.results`)."""

import sys

from cortex_sal.sal.seed import SeedCognitiveShield as CognitiveShield
from cortex_sal.sal.seed import to_seed_dict

__all__ = ["CognitiveShield", "to_seed_dict"]


def _main(argv: list[str]) -> int:
    if argv == ["--test"]:
        from cortex_sal.testing.sal_selftest import main

        return main()
    if argv:
        sys.stderr.write("usage: python src/sal/cognitive_shield_v2.py [--test]\n")
        return 2
    from rich.console import Console

    from cortex_sal.cli.demo import run_demo

    return run_demo(Console(), frames=10, delay_s=0.0, use_edf=False)


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
