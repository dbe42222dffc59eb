"""atheris entry point: AuditTrail on a mutated SQLite file (open, verify, entries).

    python fuzz/fuzz_audit_db.py -atheris_runs=100000 [-max_total_time=SECONDS] [CORPUS_DIR]
    python fuzz/fuzz_audit_db.py --replay CRASH_FILE

The oracle is ``fuzzlib.TARGETS["audit_db"]``, the same one ``tests/test_fuzz_*.py`` run under
hypothesis; see fuzz/README.md.
"""

import fuzzrun

if __name__ == "__main__":
    fuzzrun.run("audit_db")
