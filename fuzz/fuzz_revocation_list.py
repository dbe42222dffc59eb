"""atheris entry point: TrustStore.add_revocation_list on mutated revocation lists.

    python fuzz/fuzz_revocation_list.py -atheris_runs=100000 [-max_total_time=SECONDS] [CORPUS_DIR]
    python fuzz/fuzz_revocation_list.py --replay CRASH_FILE

The oracle is ``fuzzlib.TARGETS["revocation_list"]``, the same one ``tests/test_fuzz_keros.py`` runs
under hypothesis; see fuzz/README.md.
"""

import fuzzrun

if __name__ == "__main__":
    fuzzrun.run("revocation_list")
