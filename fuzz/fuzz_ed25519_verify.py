"""atheris entry point: ed25519_verify with public key, message or signature from outside.

    python fuzz/fuzz_ed25519_verify.py -atheris_runs=100000 [-max_total_time=SECONDS] [CORPUS_DIR]
    python fuzz/fuzz_ed25519_verify.py --replay CRASH_FILE

The oracle is ``fuzzlib.TARGETS["ed25519_verify"]``, the same one ``tests/test_fuzz_*.py`` run under
hypothesis; see fuzz/README.md.
"""

import fuzzrun

if __name__ == "__main__":
    fuzzrun.run("ed25519_verify")
