"""atheris entry point: ClinicalChannel.open (clinical channel messages).

    python fuzz/fuzz_clinical.py -atheris_runs=100000 [-max_total_time=SECONDS] [CORPUS_DIR]
    python fuzz/fuzz_clinical.py --replay CRASH_FILE

The oracle is ``fuzzlib.TARGETS["clinical"]``, the same one ``tests/test_fuzz_*.py`` run under
hypothesis; see fuzz/README.md.
"""

import fuzzrun

if __name__ == "__main__":
    fuzzrun.run("clinical")
