"""Cortex SAL: a custody-first shield between biometric sensors and AI applications."""

__version__ = "0.1.0"
