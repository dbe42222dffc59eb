"""atheris entry point: SensorCertificationAuthority.full_handshake (the seed's API) on mutated public inputs.

    python fuzz/fuzz_certification.py -atheris_runs=100000 [-max_total_time=SECONDS] [CORPUS_DIR]
    python fuzz/fuzz_certification.py --replay CRASH_FILE

The oracle is ``fuzzlib.TARGETS["certification"]``, the same one ``tests/test_fuzz_*.py`` run under
hypothesis; see fuzz/README.md.
"""

import fuzzrun

if __name__ == "__main__":
    fuzzrun.run("certification")
