"""The seed's module path for the secure buffers: they live in ``cortex_sal.securemem``."""

from cortex_sal.securemem import SecureKeyBuffer, SecureTensorBuffer

__all__ = ["SecureKeyBuffer", "SecureTensorBuffer"]
