"""atheris entry point: parse_certificate and verify_certificate on mutated certificates.

    python fuzz/fuzz_certificate.py -atheris_runs=100000 [-max_total_time=SECONDS] [CORPUS_DIR]
    python fuzz/fuzz_certificate.py --replay CRASH_FILE

The oracle is ``fuzzlib.TARGETS["certificate"]``, the same one ``tests/test_fuzz_keros.py`` runs
under hypothesis; see fuzz/README.md.
"""

import fuzzrun

if __name__ == "__main__":
    fuzzrun.run("certificate")
