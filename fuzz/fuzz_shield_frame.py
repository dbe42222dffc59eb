"""atheris entry point: CognitiveShield.ingest_frame (encrypted frames into the shield).

    python fuzz/fuzz_shield_frame.py -atheris_runs=100000 [-max_total_time=SECONDS] [CORPUS_DIR]
    python fuzz/fuzz_shield_frame.py --replay CRASH_FILE

The oracle is ``fuzzlib.TARGETS["shield_frame"]``, the same one ``tests/test_fuzz_*.py`` run under
hypothesis; see fuzz/README.md.
"""

import fuzzrun

if __name__ == "__main__":
    fuzzrun.run("shield_frame")
