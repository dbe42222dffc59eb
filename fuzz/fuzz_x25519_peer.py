"""atheris entry point: x25519_shared_secret with a peer public key from outside.

    python fuzz/fuzz_x25519_peer.py -atheris_runs=100000 [-max_total_time=SECONDS] [CORPUS_DIR]
    python fuzz/fuzz_x25519_peer.py --replay CRASH_FILE

The oracle is ``fuzzlib.TARGETS["x25519_peer"]``, the same one ``tests/test_fuzz_*.py`` run under
hypothesis; see fuzz/README.md.
"""

import fuzzrun

if __name__ == "__main__":
    fuzzrun.run("x25519_peer")
