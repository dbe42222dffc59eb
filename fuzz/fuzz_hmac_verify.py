"""atheris entry point: hmac_sha256_verify with a tag or message from outside.

    python fuzz/fuzz_hmac_verify.py -atheris_runs=100000 [-max_total_time=SECONDS] [CORPUS_DIR]
    python fuzz/fuzz_hmac_verify.py --replay CRASH_FILE

The oracle is ``fuzzlib.TARGETS["hmac_verify"]``, the same one ``tests/test_fuzz_*.py`` run under
hypothesis; see fuzz/README.md.
"""

import fuzzrun

if __name__ == "__main__":
    fuzzrun.run("hmac_verify")
