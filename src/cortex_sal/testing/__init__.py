"""Test utilities that ship with the package (the residue harness and its scenarios)."""
