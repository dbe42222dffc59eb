"""The child side of the residue harness: runs one scenario under the parent's eye.

Started as ``python -W error -m cortex_sal.testing.child REGISTRY SCENARIO``, where REGISTRY is
the module whose ``SCENARIOS`` holds the scenario (``cortex_sal.testing.scenarios``, or a
module of a layer above, such as ``cortex_sal.cli.residue_scenarios``). Secrets arrive on
standard input and are read with ``os.readv`` straight into locked memory, so no
userspace buffer of this process ever holds them; public inputs come the same way as
``bytes``. The child talks back with JSON lines on standard output: ``{"message": hex}``
for a protocol message, ``{"checkpoint": name, "arena": ranges}`` at a checkpoint, after
which it blocks until the parent, having read ``/proc/<pid>/mem``, answers ``go``.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import sys

from ..securemem import SecureBuffer, SecureKeyBuffer
from ..securemem.arena import arena

STDIN = 0
STDOUT = 1


class Context:
    """What a scenario's child side uses to receive inputs, answer, and pause."""

    def read_key(self) -> SecureKeyBuffer:
        key: SecureKeyBuffer = SecureKeyBuffer.from_fd(STDIN)
        return key

    def read_secret(self, size: int) -> SecureBuffer:
        return SecureBuffer.from_fd(STDIN, size)

    def read_into(self, buf: SecureBuffer) -> None:
        """Fill an existing secure buffer (e.g. a tensor buffer) straight from the pipe."""
        with buf._view() as dst:
            done = 0
            while done < len(dst):
                got = os.readv(STDIN, [dst[done:]])
                if got == 0:
                    raise EOFError("parent closed the pipe")
                done += got

    def read_public(self, size: int) -> bytes:
        out = b""
        while len(out) < size:
            chunk = os.read(STDIN, size - len(out))
            if not chunk:
                raise EOFError("parent closed the pipe")
            out += chunk
        return out

    def send_public(self, data: bytes) -> None:
        self._line({"message": data.hex()})

    def checkpoint(self, name: str) -> None:
        gc.collect()
        self._line({"checkpoint": name, "arena": [[r.data, r.data + r.size] for r in arena().regions()]})
        answer = self.read_public(3)
        if answer != b"go\n":
            raise RuntimeError(f"unexpected answer from the parent: {answer!r}")

    def _line(self, obj: object) -> None:
        os.write(STDOUT, (json.dumps(obj) + "\n").encode())


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[0].startswith("cortex_sal."):
        sys.stderr.write("usage: python -m cortex_sal.testing.child cortex_sal.MODULE SCENARIO\n")
        return 2
    scenarios = getattr(importlib.import_module(argv[0]), "SCENARIOS", {})
    if argv[1] not in scenarios:
        sys.stderr.write(f"{argv[0]} has no residue scenario {argv[1]!r}; known: {', '.join(scenarios)}\n")
        return 2
    ctx = Context()
    scenarios[argv[1]].child(ctx)
    ctx.checkpoint("end")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
