"""atheris entry point: SecureBusSession.decrypt_frame under the default policy (a failed tag compromises).

    python fuzz/fuzz_frames_strict.py -atheris_runs=100000 [-max_total_time=SECONDS] [CORPUS_DIR]
    python fuzz/fuzz_frames_strict.py --replay CRASH_FILE

The oracle is ``fuzzlib.TARGETS["frames_strict"]``, the same one ``tests/test_fuzz_*.py`` run under
hypothesis; see fuzz/README.md.
"""

import fuzzrun

if __name__ == "__main__":
    fuzzrun.run("frames_strict")
