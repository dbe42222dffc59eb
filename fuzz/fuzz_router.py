"""atheris entry point: TelemetryRouter.ingest_from_bridge (router payload mappings).

    python fuzz/fuzz_router.py -atheris_runs=100000 [-max_total_time=SECONDS] [CORPUS_DIR]
    python fuzz/fuzz_router.py --replay CRASH_FILE

The oracle is ``fuzzlib.TARGETS["router"]``, the same one ``tests/test_fuzz_*.py`` run under
hypothesis; see fuzz/README.md.
"""

import fuzzrun

if __name__ == "__main__":
    fuzzrun.run("router")
