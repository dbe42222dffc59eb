"""atheris entry point: the governance CLI's node.json loader.

    python fuzz/fuzz_cli_node.py -atheris_runs=100000 [-max_total_time=SECONDS] [CORPUS_DIR]
    python fuzz/fuzz_cli_node.py --replay CRASH_FILE

The oracle is ``fuzzlib.TARGETS["cli_node"]``, the same one ``tests/test_fuzz_*.py`` run under
hypothesis; see fuzz/README.md.
"""

import fuzzrun

if __name__ == "__main__":
    fuzzrun.run("cli_node")
