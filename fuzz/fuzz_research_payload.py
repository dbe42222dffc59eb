"""atheris entry point: parse_research_payload (the 41-byte research payload).

    python fuzz/fuzz_research_payload.py -atheris_runs=100000 [-max_total_time=SECONDS] [CORPUS_DIR]
    python fuzz/fuzz_research_payload.py --replay CRASH_FILE

The oracle is ``fuzzlib.TARGETS["research_payload"]``, the same one ``tests/test_fuzz_*.py`` run under
hypothesis; see fuzz/README.md.
"""

import fuzzrun

if __name__ == "__main__":
    fuzzrun.run("research_payload")
