"""atheris entry point: KEROS v2 handshake messages 2 and 3 (Noise XX) at the sensor and the gateway.

    python fuzz/fuzz_noise_handshake.py -atheris_runs=100000 [-max_total_time=SECONDS] [CORPUS_DIR]
    python fuzz/fuzz_noise_handshake.py --replay CRASH_FILE

The oracle is ``fuzzlib.TARGETS["noise_handshake"]``, the same one ``tests/test_fuzz_keros.py`` runs
under hypothesis; see fuzz/README.md.
"""

import fuzzrun

if __name__ == "__main__":
    fuzzrun.run("noise_handshake")
