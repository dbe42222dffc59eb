"""atheris entry point: NodeRegistry.from_json (the governance node registry).

    python fuzz/fuzz_node_registry.py -atheris_runs=100000 [-max_total_time=SECONDS] [CORPUS_DIR]
    python fuzz/fuzz_node_registry.py --replay CRASH_FILE

The oracle is ``fuzzlib.TARGETS["node_registry"]``, the same one ``tests/test_fuzz_*.py`` run under
hypothesis; see fuzz/README.md.
"""

import fuzzrun

if __name__ == "__main__":
    fuzzrun.run("node_registry")
