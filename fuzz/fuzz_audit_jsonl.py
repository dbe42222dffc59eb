"""atheris entry point: verify_jsonl (the exported audit trail).

    python fuzz/fuzz_audit_jsonl.py -atheris_runs=100000 [-max_total_time=SECONDS] [CORPUS_DIR]
    python fuzz/fuzz_audit_jsonl.py --replay CRASH_FILE

The oracle is ``fuzzlib.TARGETS["audit_jsonl"]``, the same one ``tests/test_fuzz_*.py`` run under
hypothesis; see fuzz/README.md.
"""

import fuzzrun

if __name__ == "__main__":
    fuzzrun.run("audit_jsonl")
