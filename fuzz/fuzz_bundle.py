"""atheris entry point: EnactedBundle.from_json and verify (governance bundles).

    python fuzz/fuzz_bundle.py -atheris_runs=100000 [-max_total_time=SECONDS] [CORPUS_DIR]
    python fuzz/fuzz_bundle.py --replay CRASH_FILE

The oracle is ``fuzzlib.TARGETS["bundle"]``, the same one ``tests/test_fuzz_*.py`` run under
hypothesis; see fuzz/README.md.
"""

import fuzzrun

if __name__ == "__main__":
    fuzzrun.run("bundle")
