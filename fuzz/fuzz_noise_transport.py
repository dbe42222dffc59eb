"""atheris entry point: NoiseTransport.decrypt on mutated transport messages, lossy and ordered.

    python fuzz/fuzz_noise_transport.py -atheris_runs=100000 [-max_total_time=SECONDS] [CORPUS_DIR]
    python fuzz/fuzz_noise_transport.py --replay CRASH_FILE

The oracle is ``fuzzlib.TARGETS["noise_transport"]``, the same one ``tests/test_fuzz_keros.py`` runs
under hypothesis; see fuzz/README.md.
"""

import fuzzrun

if __name__ == "__main__":
    fuzzrun.run("noise_transport")
