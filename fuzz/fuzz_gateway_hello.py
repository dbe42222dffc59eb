"""atheris entry point: GatewayHandshake.receive_sensor_hello (the gateway's v1 state machine).

    python fuzz/fuzz_gateway_hello.py -atheris_runs=100000 [-max_total_time=SECONDS] [CORPUS_DIR]
    python fuzz/fuzz_gateway_hello.py --replay CRASH_FILE

The oracle is ``fuzzlib.TARGETS["gateway_hello"]``, the same one ``tests/test_fuzz_*.py`` run under
hypothesis; see fuzz/README.md.
"""

import fuzzrun

if __name__ == "__main__":
    fuzzrun.run("gateway_hello")
