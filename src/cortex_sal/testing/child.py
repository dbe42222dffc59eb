"""The child side of the residue harness: runs one scenario under the parent's eye.

Started as ``python -W error -m cortex_sal.testing.child SCENARIO``. Secrets arrive on
standard input and are read with ``os.readv`` straight into locked memory, so no
userspace buffer of this process ever holds them; public inputs come the same way as
``bytes``. At each checkpoint the child writes one JSON line on standard output (the
checkpoint's name and the arena's data ranges) and blocks until the parent, having read
``/proc/<pid>/mem``, answers ``go``.
"""

from __future__ import annotations

import gc
import json
import os
import sys

from ..securemem import SecureBuffer, SecureKeyBuffer
from ..securemem.arena import arena

STDIN = 0
STDOUT = 1


class Context:
    """What a scenario uses to receive inputs and pause for the parent."""

    def read_key(self) -> SecureKeyBuffer:
        key: SecureKeyBuffer = SecureKeyBuffer.from_fd(STDIN)
        return key

    def read_secret(self, size: int) -> SecureBuffer:
        return SecureBuffer.from_fd(STDIN, size)

    def read_public(self, size: int) -> bytes:
        out = b""
        while len(out) < size:
            chunk = os.read(STDIN, size - len(out))
            if not chunk:
                raise EOFError("parent closed the pipe")
            out += chunk
        return out

    def checkpoint(self, name: str, *, collect: bool = True) -> None:
        if collect:
            gc.collect()
        ranges = [[r.data, r.data + r.size] for r in arena().regions()]
        os.write(STDOUT, (json.dumps({"checkpoint": name, "arena": ranges}) + "\n").encode())
        answer = self.read_public(3)
        if answer != b"go\n":
            raise RuntimeError(f"unexpected answer from the parent: {answer!r}")


def main(argv: list[str]) -> int:
    from .scenarios import SCENARIOS

    if len(argv) != 1 or argv[0] not in SCENARIOS:
        sys.stderr.write(f"usage: python -m cortex_sal.testing.child {{{','.join(SCENARIOS)}}}\n")
        return 2
    ctx = Context()
    SCENARIOS[argv[0]].run(ctx)
    ctx.checkpoint("end")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
