"""The store's loaders refuse a bad path with their own CortexError, and writing a node key never
overwrites or leaves half a key behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cortex_sal.errors import AuditError, CliInputError, InvalidArgumentError
from cortex_sal.store.audit import AuditTrail, jsonl_entry_count, verify_jsonl
from cortex_sal.store.governance import NODE_FILE, SEED_FILE, create_node_key, load_node, load_seed
from cortex_sal.store.keros import load_sensor_registry

NUL_PATH = "audit\x00.db"


@pytest.mark.parametrize(
    ("load", "error"),
    [
        (AuditTrail, AuditError),
        (verify_jsonl, AuditError),
        (jsonl_entry_count, AuditError),
        (load_seed, CliInputError),
        (load_node, CliInputError),
        (load_sensor_registry, InvalidArgumentError),
    ],
)
def test_a_path_holding_a_nul_byte_is_refused_by_every_loader(load, error) -> None:
    with pytest.raises(error, match="embedded null byte"):
        load(NUL_PATH)


def test_create_node_key_refuses_an_existing_node_file_and_leaves_it_alone(tmp_path: Path) -> None:
    (tmp_path / NODE_FILE).write_text("not mine to overwrite\n", encoding="utf-8")
    with pytest.raises(CliInputError, match="already holds a node key"):
        create_node_key(tmp_path, "Residue Institute", "DE")
    assert (tmp_path / NODE_FILE).read_text(encoding="utf-8") == "not mine to overwrite\n"
    assert not (tmp_path / SEED_FILE).exists()


def test_create_node_key_writes_a_private_seed_and_a_loadable_node(tmp_path: Path) -> None:
    node = create_node_key(tmp_path / "k", "Residue Institute", "DE")
    assert os.stat(tmp_path / "k" / SEED_FILE).st_mode & 0o777 == 0o600
    assert load_node(tmp_path / "k").node_id == node.node_id
    with load_seed(tmp_path / "k" / SEED_FILE) as seed:
        assert len(seed) == 32
