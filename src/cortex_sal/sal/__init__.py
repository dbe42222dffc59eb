"""The shield (SAL): raw samples in locked memory to bounded, obfuscated, consent-gated features (docs/sal.md)."""
