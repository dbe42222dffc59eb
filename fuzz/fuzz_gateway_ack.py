"""atheris entry point: GatewayHandshake.receive_sensor_ack in HANDSHAKE (only the true ACK establishes).

    python fuzz/fuzz_gateway_ack.py -atheris_runs=100000 [-max_total_time=SECONDS] [CORPUS_DIR]
    python fuzz/fuzz_gateway_ack.py --replay CRASH_FILE

The oracle is ``fuzzlib.TARGETS["gateway_ack"]``, the same one ``tests/test_fuzz_*.py`` run under
hypothesis; see fuzz/README.md.
"""

import fuzzrun

if __name__ == "__main__":
    fuzzrun.run("gateway_ack")
