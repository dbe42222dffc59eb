"""atheris entry point: aead_decrypt with nonce, ciphertext or associated data from outside.

    python fuzz/fuzz_aead_decrypt.py -atheris_runs=100000 [-max_total_time=SECONDS] [CORPUS_DIR]
    python fuzz/fuzz_aead_decrypt.py --replay CRASH_FILE

The oracle is ``fuzzlib.TARGETS["aead_decrypt"]``, the same one ``tests/test_fuzz_*.py`` run under
hypothesis; see fuzz/README.md.
"""

import fuzzrun

if __name__ == "__main__":
    fuzzrun.run("aead_decrypt")
