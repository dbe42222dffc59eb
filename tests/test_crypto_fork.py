"""After fork, the child's crypto works on fresh locked state (the parent's was wiped)."""

from __future__ import annotations

import os

from cortex_sal.crypto import hkdf_sha256, hmac_sha256_into
from cortex_sal.securemem import SecureKeyBuffer


def test_hkdf_and_keyed_hmac_work_in_a_forked_child() -> None:
    with SecureKeyBuffer() as key:
        hkdf_sha256(key, salt=b"salt", info=b"info").secure_purge()  # the parent's per-thread state exists
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            with SecureKeyBuffer(bytes(range(32))) as k, SecureKeyBuffer.allocate() as out:
                hkdf_sha256(k, salt=b"salt", info=b"info").secure_purge()
                hmac_sha256_into(k, out, b"a", b"b")
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
