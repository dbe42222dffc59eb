"""The I/O edge for state at rest: every file, SQLite and JSONL read or write of the package.

* :mod:`.files`: the primitives (secret key files straight into and out of locked memory,
  exclusive and atomic public files, strict JSON documents, rollback of a half-done operation);
* :mod:`.keros`: CA directories, sensor and gateway identities, trust stores, sensor registries;
* :mod:`.governance`: node keys, node registries, proposals, signatures, bundles;
* :mod:`.audit`: the SQLite audit trail and its JSONL export.

Layers below (``keros``, ``sal``, ``governance``) stay pure: they parse and produce bytes and
text; this package decides where those live.
"""
