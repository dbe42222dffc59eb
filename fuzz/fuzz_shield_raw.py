"""atheris entry point: CognitiveShield.ingest_raw_data (raw samples of any dtype, shape and value).

    python fuzz/fuzz_shield_raw.py -atheris_runs=100000 [-max_total_time=SECONDS] [CORPUS_DIR]
    python fuzz/fuzz_shield_raw.py --replay CRASH_FILE

The oracle is ``fuzzlib.TARGETS["shield_raw"]``, the same one ``tests/test_fuzz_*.py`` run under
hypothesis; see fuzz/README.md.
"""

import fuzzrun

if __name__ == "__main__":
    fuzzrun.run("shield_raw")
