"""``open_spec``: a source from the one-line spec ``cortex-sal sensor --source`` takes (docs/sources.md).

::

    synthetic                               1 channel, 128 Hz, seed 1 (today's signal)
    synthetic:channels=8,rate=250,seed=3
    edf                                     the real scalp EEG pyedflib ships (Fp1, 128 Hz)
    edf:PATH            edf:PATH#Fp1,Fp2    an EDF(+) file, all signals or these labels
    bdf:PATH            bdf:PATH#A1,A2      a BDF(+) file
    brainflow:synthetic                     a BrainFlow board by name or id
    brainflow:cyton?serial_port=/dev/ttyUSB0
    brainflow:playback?file=F&master_board=synthetic
    brainflow:synthetic#Fz,Cz               (any brainflow spec) only these EEG channels
    lsl:type=EEG        lsl:name=X,timeout=5      lsl:source_id=S#C3,C4
    xdf:PATH#STREAM     xdf:PATH#type=EEG

Every malformed spec is a :class:`SourceSpecError` that says what was wrong and what is valid; a
missing optional package is a :class:`SourceDependencyError` naming the extra.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass

from ..errors import SourceDependencyError, SourceSpecError
from .base import Source

__all__ = ["KINDS", "Kind", "installed", "open_spec", "parse_options"]


@dataclass(frozen=True)
class Kind:
    name: str
    package: str | None  # the optional distribution it needs
    extra: str | None
    forms: tuple[tuple[str, str], ...]  # (form, example)


KINDS: tuple[Kind, ...] = (
    Kind("synthetic", None, None, (
        ("synthetic", "synthetic"),
        ("synthetic:channels=N,rate=HZ,seed=S", "synthetic:channels=8,rate=250,seed=3"),
    )),
    Kind("edf", "pyedflib", "edf", (
        ("edf", "edf"),
        ("edf:PATH", "edf:recording.edf"),
        ("edf:PATH#LABEL,LABEL", "edf:recording.edf#Fp1,Fp2"),
    )),
    Kind("bdf", "pyedflib", "edf", (
        ("bdf:PATH", "bdf:recording.bdf"),
        ("bdf:PATH#LABEL,LABEL", "bdf:recording.bdf#A1,A2"),
    )),
    Kind("brainflow", "brainflow", "brainflow", (
        ("brainflow:BOARD", "brainflow:synthetic"),
        ("brainflow:BOARD?OPTION=VALUE&...", "brainflow:cyton?serial_port=/dev/ttyUSB0"),
        ("brainflow:playback?file=PATH&master_board=BOARD", "brainflow:playback?file=rec.csv&master_board=synthetic"),
        ("brainflow:BOARD#LABEL,LABEL", "brainflow:synthetic#Fz,Cz"),
    )),
    Kind("lsl", "pylsl", "lsl", (
        ("lsl:PROP=VALUE[,timeout=S]  (PROP: name, type, source_id)", "lsl:type=EEG"),
        ("lsl:name=NAME,timeout=S#LABEL,LABEL", "lsl:name=X,timeout=5"),
    )),
    Kind("xdf", "pyxdf", "xdf", (
        ("xdf:PATH#STREAM_NAME", "xdf:session.xdf#EEG-amp"),
        ("xdf:PATH#type=TYPE", "xdf:session.xdf#type=EEG"),
    )),
)  # fmt: skip
KIND_NAMES = tuple(k.name for k in KINDS)


def installed() -> dict[str, str | None]:
    """The version of each optional package a source kind needs (``None``: not installed)."""
    out: dict[str, str | None] = {}
    for kind in KINDS:
        if kind.package and kind.package not in out:
            try:
                out[kind.package] = importlib.metadata.version(kind.package)
            except importlib.metadata.PackageNotFoundError:
                out[kind.package] = None
    return out


def parse_options(text: str, *, sep: str, what: str, valid: tuple[str, ...]) -> dict[str, str]:
    """``k=v`` pairs split on ``sep``; an unknown key, a repeated key or a pair without ``=`` is refused."""
    out: dict[str, str] = {}
    if not text:
        return out
    for pair in text.split(sep):
        key, eq, value = pair.partition("=")
        key = key.strip()
        if not eq or not key or not value.strip():
            raise SourceSpecError(f"{what}: expected KEY=VALUE, got {pair!r}; valid keys: {', '.join(valid)}")
        if key not in valid:
            raise SourceSpecError(f"{what}: unknown option {key!r}; valid keys: {', '.join(valid)}")
        if key in out:
            raise SourceSpecError(f"{what}: option {key!r} given twice")
        out[key] = value.strip()
    return out


def _labels(text: str, what: str) -> list[str]:
    labels = [x.strip() for x in text.split(",")]
    if not all(labels):
        raise SourceSpecError(f"{what}: an empty channel label in {text!r}; write #LABEL,LABEL")
    return labels


def _int(value: str, key: str, what: str, lo: int, hi: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise SourceSpecError(f"{what}: {key} must be an integer from {lo} to {hi}, got {value!r}") from None
    if not lo <= number <= hi:
        raise SourceSpecError(f"{what}: {key} must be from {lo} to {hi}, got {number}")
    return number


def _float(value: str, key: str, what: str, lo: float, hi: float) -> float:
    try:
        number = float(value)
    except ValueError:
        raise SourceSpecError(f"{what}: {key} must be a number from {lo:g} to {hi:g}, got {value!r}") from None
    if not lo <= number <= hi:  # NaN fails this too
        raise SourceSpecError(f"{what}: {key} must be from {lo:g} to {hi:g}, got {value!r}")
    return number


def _forms(kind: str) -> str:
    return "; ".join(form for k in KINDS if k.name == kind for form, _ in k.forms)


def open_spec(spec: str) -> Source:
    """The source a spec names, opened (a device prepared and streaming, a file open)."""
    if not isinstance(spec, str) or not spec.strip():
        raise SourceSpecError(f"a source spec must be a non-empty string, got {spec!r}; kinds: {', '.join(KIND_NAMES)}")
    kind, colon, rest = spec.partition(":")
    kind = kind.strip().lower()
    if kind not in KIND_NAMES:
        raise SourceSpecError(f"unknown source kind {kind!r} in {spec!r}; kinds: {', '.join(KIND_NAMES)}")
    what = f"source {spec!r}"
    if kind == "synthetic":
        from .synthetic import MAX_CHANNELS, SyntheticSource

        options = parse_options(rest, sep=",", what=what, valid=("channels", "rate", "seed"))
        return SyntheticSource(
            channels=_int(options.get("channels", "1"), "channels", what, 1, MAX_CHANNELS),
            rate_hz=_float(options.get("rate", "128"), "rate", what, 1.0, 100_000.0),
            seed=_int(options.get("seed", "1"), "seed", what, 0, 2**63 - 1),
        )
    if kind in ("edf", "bdf"):
        from .edf import EdfSource, bundled_edf_path

        if not colon:
            if kind == "bdf":
                raise SourceSpecError(f"{what}: bdf needs a file: {_forms('bdf')}")
            path = bundled_edf_path()
            if path is None:
                raise SourceDependencyError(
                    "the bundled EEG ships with the optional pyedflib: pip install 'cortex-sal[edf]' (or give edf:PATH)"
                )
            return EdfSource(path)
        path, hash_, labels = rest.rpartition("#") if "#" in rest else (rest, "", "")
        if not path:
            raise SourceSpecError(f"{what}: no file path; forms: {_forms(kind)}")
        return EdfSource(path, channels=_labels(labels, what) if hash_ else None)
    if kind == "brainflow":
        from .brainflow import PARAMS, BrainFlowSource

        body, hash_, labels = rest.partition("#")
        board, _, query = body.partition("?")
        if not colon or not board.strip():
            raise SourceSpecError(f"{what}: no board; forms: {_forms('brainflow')}")
        options = parse_options(query, sep="&", what=what, valid=tuple(sorted(PARAMS)))
        return BrainFlowSource(board.strip(), options=options, channels=_labels(labels, what) if hash_ else None)
    if kind == "lsl":
        from .lsl import PROPS, LslSource

        body, hash_, labels = rest.partition("#")
        options = parse_options(body, sep=",", what=what, valid=(*PROPS, "timeout"))
        props = [p for p in PROPS if p in options]
        if len(props) != 1:
            raise SourceSpecError(f"{what}: name exactly one of {', '.join(PROPS)}; forms: {_forms('lsl')}")
        timeout = _float(options.get("timeout", "5"), "timeout", what, 0.01, 600.0)
        return LslSource(props[0], options[props[0]], timeout=timeout,
                         channels=_labels(labels, what) if hash_ else None)  # fmt: skip
    # xdf
    from .xdf import XdfSource

    path, hash_, stream = rest.rpartition("#")
    if not colon or not hash_ or not path or not stream.strip():
        raise SourceSpecError(f"{what}: an XDF replay names its file and one stream; forms: {_forms('xdf')}")
    return XdfSource(path, stream.strip())
