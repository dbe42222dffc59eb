"""atheris entry point: store.keros.load_sensor_registry (the sensor registry JSON file).

    python fuzz/fuzz_sensor_registry.py -atheris_runs=100000 [-max_total_time=SECONDS] [CORPUS_DIR]
    python fuzz/fuzz_sensor_registry.py --replay CRASH_FILE

The oracle is ``fuzzlib.TARGETS["sensor_registry"]``, the same one ``tests/test_fuzz_*.py`` run under
hypothesis; see fuzz/README.md.
"""

import fuzzrun

if __name__ == "__main__":
    fuzzrun.run("sensor_registry")
