"""atheris entry point: TEEHello.parse (96 bytes or HandshakeError).

    python fuzz/fuzz_v1_tee_hello.py -atheris_runs=100000 [-max_total_time=SECONDS] [CORPUS_DIR]
    python fuzz/fuzz_v1_tee_hello.py --replay CRASH_FILE

The oracle is ``fuzzlib.TARGETS["v1_tee_hello"]``, the same one ``tests/test_fuzz_*.py`` run under
hypothesis; see fuzz/README.md.
"""

import fuzzrun

if __name__ == "__main__":
    fuzzrun.run("v1_tee_hello")
