"""atheris entry point: SensorHello.parse (72 bytes or HandshakeError).

    python fuzz/fuzz_v1_hello.py -atheris_runs=100000 [-max_total_time=SECONDS] [CORPUS_DIR]
    python fuzz/fuzz_v1_hello.py --replay CRASH_FILE

The oracle is ``fuzzlib.TARGETS["v1_hello"]``, the same one ``tests/test_fuzz_*.py`` run under
hypothesis; see fuzz/README.md.
"""

import fuzzrun

if __name__ == "__main__":
    fuzzrun.run("v1_hello")
