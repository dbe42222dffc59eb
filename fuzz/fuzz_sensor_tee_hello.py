"""atheris entry point: SensorHandshake.receive_tee_hello (the ACK checked against cryptography).

    python fuzz/fuzz_sensor_tee_hello.py -atheris_runs=100000 [-max_total_time=SECONDS] [CORPUS_DIR]
    python fuzz/fuzz_sensor_tee_hello.py --replay CRASH_FILE

The oracle is ``fuzzlib.TARGETS["sensor_tee_hello"]``, the same one ``tests/test_fuzz_*.py`` run under
hypothesis; see fuzz/README.md.
"""

import fuzzrun

if __name__ == "__main__":
    fuzzrun.run("sensor_tee_hello")
