"""Start an atheris entry point: instrument ``cortex_sal`` and ``fuzzlib`` for coverage
feedback, then fuzz one target of ``fuzzlib.TARGETS`` (see fuzz/README.md).

Kept apart from ``fuzzlib`` so that nothing of ``cortex_sal`` is imported before the
instrumentation hook is in place.
"""

import sys

DEFAULTS = ("-max_len=600", "-len_control=0")  # plans need a few hundred bytes from the start


def run(name: str) -> None:
    if "--replay" in sys.argv:
        import fuzzlib

        fuzzlib.main(name)
        return
    import atheris

    with atheris.instrument_imports(include=["cortex_sal", "fuzzlib"]):
        import fuzzlib

        import cortex_sal.governance.audit
        import cortex_sal.governance.quorum
        import cortex_sal.keros
        import cortex_sal.keros.framing
        import cortex_sal.sal.clinical
        import cortex_sal.sal.router
        import cortex_sal.sal.shield
        import cortex_sal.store.audit
        import cortex_sal.store.governance
        import cortex_sal.store.keros  # noqa: F401
    for flag in DEFAULTS:
        if not any(arg.startswith(flag.split("=")[0] + "=") for arg in sys.argv):
            sys.argv.append(flag)
    fuzzlib.main(name)
