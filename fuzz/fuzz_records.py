"""atheris entry point: RecordReader on a mutated record stream cut into chunks.

    python fuzz/fuzz_records.py -atheris_runs=100000 [-max_total_time=SECONDS] [CORPUS_DIR]
    python fuzz/fuzz_records.py --replay CRASH_FILE

The oracle is ``fuzzlib.TARGETS["records"]``, the same one ``tests/test_fuzz_keros.py`` runs
under hypothesis; see fuzz/README.md.
"""

import fuzzrun

if __name__ == "__main__":
    fuzzrun.run("records")
