"""The seed's entry point: ``python src/sal/cognitive_shield_v2.py --test`` runs the SAL
vectors; without ``--test`` it runs a short demo. Thin: everything is in ``cortex_sal``."""

import sys

from cortex_sal.sal.shield import CognitiveShield

__all__ = ["CognitiveShield"]


def _main(argv: list[str]) -> int:
    if argv == ["--test"]:
        from cortex_sal.sal.selftest import main

        return main()
    if argv:
        sys.stderr.write("usage: python src/sal/cognitive_shield_v2.py [--test]\n")
        return 2
    from rich.console import Console

    from cortex_sal.cli.demo import run_demo

    return run_demo(Console(), frames=10, delay_s=0.0, use_edf=False)


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
