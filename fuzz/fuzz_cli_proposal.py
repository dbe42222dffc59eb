"""atheris entry point: the governance CLI's proposal.json loader.

    python fuzz/fuzz_cli_proposal.py -atheris_runs=100000 [-max_total_time=SECONDS] [CORPUS_DIR]
    python fuzz/fuzz_cli_proposal.py --replay CRASH_FILE

The oracle is ``fuzzlib.TARGETS["cli_proposal"]``, the same one ``tests/test_fuzz_*.py`` run under
hypothesis; see fuzz/README.md.
"""

import fuzzrun

if __name__ == "__main__":
    fuzzrun.run("cli_proposal")
