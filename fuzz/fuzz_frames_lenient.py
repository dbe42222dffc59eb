"""atheris entry point: SecureBusSession.decrypt_frame, one session with compromise_on_auth_failure=False.

    python fuzz/fuzz_frames_lenient.py -atheris_runs=100000 [-max_total_time=SECONDS] [CORPUS_DIR]
    python fuzz/fuzz_frames_lenient.py --replay CRASH_FILE

The oracle is ``fuzzlib.TARGETS["frames_lenient"]``, the same one ``tests/test_fuzz_*.py`` run under
hypothesis; see fuzz/README.md.
"""

import fuzzrun

if __name__ == "__main__":
    fuzzrun.run("frames_lenient")
