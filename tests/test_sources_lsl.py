"""LSL for real, on the machine scope: an outlet of 8 channels at 256 Hz read by the ``lsl`` source
(labels, time-corrected timestamps, a pause detected as a gap, (8, 256) frames); the shipped
liblsl configuration proven in force by the sockets an outlet opens (against liblsl's defaults);
and ``use_machine_scope``'s refusals.

The outlets run in a child in a network namespace of its own (tests/lsl_netns.py): liblsl binds an
outlet's data and time servers to the wildcard address whatever its configuration says, and
nothing a test starts may listen beyond 127.0.0.1. The child inherits ``LSLAPICFG`` from this
process, where tests/conftest.py set it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cortex_sal.errors import SourceError
from cortex_sal.sources.lsl import MACHINE_CONFIG, use_machine_scope

HELPER = Path(__file__).with_name("lsl_netns.py")
DISCOVERY = "40BB"  # liblsl's multicast (discovery) port, 16571, as /proc/net prints it
LOOPBACK = "0100007F"  # 127.0.0.1 as /proc/net prints it
ANY = "00000000"


def _in_namespace(scenario: str, env: dict[str, str] | None = None) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **(env or {})}
    done = subprocess.run([sys.executable, "-W", "error", str(HELPER), scenario], capture_output=True, text=True,
                          env=env, timeout=90, check=False)  # fmt: skip
    if done.returncode == 77:
        pytest.skip("this kernel gives no unprivileged user and network namespaces")
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_the_suite_runs_liblsl_on_the_machine_scope_config() -> None:
    assert os.environ["LSLAPICFG"] == str(MACHINE_CONFIG)
    text = MACHINE_CONFIG.read_text(encoding="ascii")
    for line in ("IPv6 = disable", "ResolveScope = machine", "MachineAddresses = {127.0.0.1}",
                 "ListenAddress = 127.0.0.1", "KnownPeers = {127.0.0.1}"):  # fmt: skip
        assert f"\n{line}\n" in text


def test_the_machine_scope_config_is_in_force_an_outlets_sockets_show_it() -> None:
    ours = _in_namespace("sockets")
    default = _in_namespace("sockets-default")  # the child drops LSLAPICFG before it imports pylsl
    assert ours["lslapicfg"] == str(MACHINE_CONFIG) and default["lslapicfg"] is None
    assert ours["resolved"] == 1 == default["resolved"]  # discovery works on the machine scope
    mine, theirs = ours["sockets"], default["sockets"]
    assert isinstance(mine, dict) and isinstance(theirs, dict)
    # ListenAddress = 127.0.0.1: the discovery responder is on loopback only (liblsl's default: every address)
    assert f"{LOOPBACK}:{DISCOVERY}" in mine["udp"] and f"{ANY}:{DISCOVERY}" not in mine["udp"]
    assert f"{ANY}:{DISCOVERY}" in theirs["udp"]
    # IPv6 = disable: no IPv6 socket at all (liblsl's default opens IPv6 responders and servers)
    assert mine["udp6"] == [] and mine["tcp6"] == []
    assert theirs["udp6"] and theirs["tcp6"]
    # machine scope: one responder, for 127.0.0.1 (the site scope's adds 224.0.0.1, 224.0.0.183, 239.255.172.215)
    assert sum(a.endswith(f":{DISCOVERY}") for a in mine["udp"]) == 1


def test_an_lsl_outlet_of_8_channels_at_256_hz_framed_with_a_pause_as_a_gap() -> None:
    got = _in_namespace("stream")
    assert got["labels"] == [f"E{i}" for i in range(1, 9)] and got["rate"] == 256.0
    flags = got["gap_flags"]
    assert isinstance(flags, list) and flags.count(True) == 1  # the 1 s pause, and nothing else
    assert float(got["stamp_error"]) < 1e-3  # type: ignore[arg-type]  # time_correction applied: the outlet's stamps
    assert got["frames"] == [[8, 256], [8, 256]] and got["dtype"] == "float32"  # one frame each side of the pause
    assert got["gaps"] == 1 and got["dropped"] == 1  # the frame in progress at the pause was not emitted
    frame0 = np.array(got["frame0"])
    spectrum = np.abs(np.fft.rfft(frame0 * np.hanning(256)))
    assert abs(np.argmax(spectrum) * 128.0 / 256 - 10.0) <= 0.5  # the outlet's 10 Hz, at 128 Hz
    assert abs(np.abs(frame0).max() - 20.0) < 0.5  # 20 uV
    sockets = got["sockets"]
    assert isinstance(sockets, dict) and sockets["udp6"] == [] and sockets["tcp6"] == []
    assert got["lost"] == "lsl:cortex-test-eeg: the stream was lost (its outlet closed or went away)"


def test_a_stream_nobody_publishes_is_refused_after_the_timeout() -> None:
    got = _in_namespace("missing")
    assert got["error"] == "SourceError"
    assert got["message"] == "no LSL stream with type='NoSuchType' on this machine within 0.5 s"
    assert 0.4 < float(got["seconds"]) < 10  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("import os; os.environ['LSLAPICFG'] = '/etc/lsl_api/lsl_api.cfg'\n", "LSLAPICFG names another liblsl"),
        ("import os; os.environ.pop('LSLAPICFG', None); import pylsl\n", "pylsl was imported before"),
    ],
)
def test_use_machine_scope_refuses_another_config_or_a_pylsl_loaded_without_it(code: str, message: str) -> None:
    script = code + (
        "from cortex_sal.errors import SourceError\n"
        "from cortex_sal.sources.lsl import use_machine_scope\n"
        "try:\n    use_machine_scope()\nexcept SourceError as exc:\n    print(exc)\nelse:\n    print('accepted')\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-W", "error", "-c", script], capture_output=True, text=True, env=env,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert message in done.stdout, done.stdout


def test_use_machine_scope_is_idempotent_in_the_suite() -> None:
    assert use_machine_scope() == MACHINE_CONFIG
    assert os.environ["LSLAPICFG"] == str(MACHINE_CONFIG)
    with pytest.raises(SourceError, match="one of name, type, source_id"):
        from cortex_sal.sources.lsl import LslSource

        LslSource("hostname", "x")


def test_the_gateways_lsl_outlet_carries_consented_features_only_and_ends_with_consent() -> None:
    """``cortex-sal gateway --lsl-outlet`` (``Gateway.serve_lsl``), two sensors streaming: one outlet,
    for the wearer who granted app ``lsl`` only, named by a pairwise pseudonym, 5 obfuscated features
    per channel and coherency (no raw sample among its values); revoked from another connection of the
    store, the outlet is gone within a poll and no resolver finds it."""
    got = _in_namespace("gateway_outlet")
    assert got["streams"] == [1, 1]  # the other sensor's wearer granted another app, not `lsl`
    pseudonym = got["expected_pseudonym"]
    assert isinstance(pseudonym, str) and len(pseudonym) == 32
    assert got["source_id"] == got["pseudonym"] == pseudonym and got["name"] == f"cortex-sal features {pseudonym}"
    assert got["labels"] == ["Fp1_mean", "Fp1_std", "Fp1_p25", "Fp1_p75", "Fp1_max", "coherency"]
    assert got["units"] == ["obfuscated"] * 6
    samples = got["samples"]
    assert isinstance(samples, list) and len(samples) == 5
    assert all(len(s) == 6 and all(0.0 <= x <= 1.0 for x in s[:5]) for s in samples)
    assert got["raw_in_samples"] == 0
    assert got["outlets_after"] == 0 and got["streams_after"] == 0
    assert isinstance(got["closed_after_s"], float) and got["closed_after_s"] < 1.0
