"""The certified sensor registry: which sensor models may connect, and why not.

Models come from a JSON file shipped with the package (the design's two certified EEG
models and the boards of issue #15) and, optionally, the user's own file of the same format.
Admission needs SNR >= 30.0 dB and >= 12 bits (the design's minima, from the registry file); an
unknown model, a revoked serial or hardware below the minima is refused with the reason.

A model also declares its frames' shape (docs/sal.md "Multi-channel"): ``channels`` (C, 1 by
default), one ``labels`` entry per channel (the electrode names the shield reports),
``native_rate_hz`` (the device's rate: the sensor resamples to the frames' 128 Hz) and
``source`` (the citation of its SNR and bits figures). A board whose datasheet gives no SNR is
listed under ``"uncited"`` in the JSON: known, described, and refused until a site registry
gives a measured figure (never an invented one).

A sensor id is ``MODEL`` or ``MODEL/SERIAL``. In v1 the id is self-declared: the registry
authorises a *name*, which is exactly the weakness the authenticated channel removes.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from .. import strict_json
from ..errors import (
    ChannelCountError,
    InvalidArgumentError,
    RateMismatchError,
    SensorNotCertifiedError,
    WrongTypeError,
)

MIN_SNR_DB = 30.0
MIN_BITS = 12
MAX_CHANNELS = 32  # a 32-channel frame (32 x 1024 bytes) fits one Noise message (<= 65535 bytes)
FRAME_RATE_HZ = 128.0  # the rate of every frame the shield takes (the sensor resamples to it)
MAX_RATE_HZ = 100_000.0


@dataclass(frozen=True)
class SensorModel:
    """A certified sensor model: capability figures and the shape of its frames.

    ``labels`` empty means ``ch1 .. chC``; otherwise exactly ``channels`` distinct, non-empty
    names. Invalid values raise (``WrongTypeError`` / ``InvalidArgumentError``) at construction."""

    model_id: str
    manufacturer: str
    snr_db: float
    bits: int
    channels: int = 1
    labels: tuple[str, ...] = ()
    native_rate_hz: float = FRAME_RATE_HZ
    source: str = ""
    synthetic: bool = False

    def __post_init__(self) -> None:
        channels = self.channels
        if isinstance(channels, bool) or not isinstance(channels, int):
            raise WrongTypeError(f"channels must be an int, got {type(channels).__name__}")
        if not 1 <= channels <= MAX_CHANNELS:
            raise InvalidArgumentError(f"channels must be within 1..{MAX_CHANNELS}, got {channels}")
        labels = self.labels
        if isinstance(labels, str) or not isinstance(labels, tuple | list):
            raise WrongTypeError(f"labels must be a tuple of str, got {type(labels).__name__}")
        if not labels:
            labels = tuple(f"ch{i + 1}" for i in range(channels))
        if len(labels) != channels or len(set(labels)) != channels:
            raise InvalidArgumentError(f"labels must be {channels} distinct names, got {len(labels)}")
        if not all(isinstance(x, str) and 0 < len(x) <= 32 and x.isprintable() for x in labels):
            raise InvalidArgumentError("each label must be a printable str of 1..32 characters")
        object.__setattr__(self, "labels", tuple(labels))
        rate = _number(self.native_rate_hz, "native_rate_hz")
        if not 0 < rate <= MAX_RATE_HZ:
            raise InvalidArgumentError(f"native_rate_hz must be within (0, {MAX_RATE_HZ:g}], got {rate!r}")
        object.__setattr__(self, "native_rate_hz", rate)
        if not isinstance(self.source, str) or not isinstance(self.synthetic, bool):
            raise WrongTypeError("source must be a str and synthetic a bool")

    @property
    def frame_bytes(self) -> int:
        """The payload of one frame of this model: ``channels`` x 256 float32 samples."""
        return self.channels * 256 * 4

    def check_stream(self, channels: int, rate_hz: float) -> None:
        """Refuse a source whose channel count or native rate is not this model's (the sensor's
        side, before it frames: :class:`~cortex_sal.errors.ChannelCountError`,
        :class:`~cortex_sal.errors.RateMismatchError`)."""
        n = _integer(channels, "channels")
        rate = _number(rate_hz, "rate_hz")
        if n != self.channels:
            raise ChannelCountError(f"model {self.model_id!r} has {self.channels} channels, the source {n}")
        if not math.isclose(rate, self.native_rate_hz, rel_tol=1e-6):
            raise RateMismatchError(
                f"model {self.model_id!r} samples at {self.native_rate_hz:g} Hz, the source at {rate:g} Hz"
            )


def sensor_id_hash(sensor_id: str) -> bytes:
    """The 32-byte identifier hash sent on the wire instead of the id (SHA-256 of UTF-8)."""
    if not isinstance(sensor_id, str) or not sensor_id:
        raise WrongTypeError(f"sensor_id must be a non-empty str, got {type(sensor_id).__name__}")
    try:
        raw = sensor_id.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgumentError("sensor_id must be valid Unicode text (it holds a lone surrogate)") from None
    return hashlib.sha256(raw).digest()


def model_of(sensor_id: str) -> str:
    if not isinstance(sensor_id, str) or not sensor_id:
        raise WrongTypeError(f"sensor_id must be a non-empty str, got {type(sensor_id).__name__}")
    return sensor_id.split("/", 1)[0]


class SensorRegistry:
    """Certified models, capability minima and a revocation list of sensor ids."""

    def __init__(
        self, models: Iterable[SensorModel], *, min_snr_db: float = MIN_SNR_DB, min_bits: int = MIN_BITS
    ) -> None:
        self.min_snr_db = _number(min_snr_db, "min_snr_db")
        self.min_bits = _integer(min_bits, "min_bits")
        self._models: dict[str, SensorModel] = {}
        if isinstance(models, str | bytes) or not isinstance(models, Iterable):
            raise WrongTypeError(f"models must be an iterable of SensorModel, got {type(models).__name__}")
        for model in models:
            if not isinstance(model, SensorModel):
                raise WrongTypeError(f"models must be SensorModel instances, got {type(model).__name__}")
            self._models[model.model_id] = model
        self._revoked: set[str] = set()
        self._uncited: dict[str, str] = {}  # boards the packaged file describes but cannot certify

    @classmethod
    def default(cls) -> SensorRegistry:
        """A fresh copy of the registry shipped with the package (parsed once per process)."""
        packaged = _packaged_registry()
        registry = cls(packaged.models(), min_snr_db=packaged.min_snr_db, min_bits=packaged.min_bits)
        registry._uncited = dict(packaged._uncited)
        return registry

    @classmethod
    def from_json(cls, text: str | bytes, source: str, *, extend: SensorRegistry | None = None) -> SensorRegistry:
        """Parse a registry document (``source`` names it in errors); with ``extend``, add its models to
        (a copy of) that registry. Files are read by :func:`cortex_sal.store.keros.load_sensor_registry`.
        """
        doc = strict_json.loads(text, InvalidArgumentError, source)
        loaded = cls._from_document(doc, source)
        if extend is None:
            return loaded
        merged = cls([*extend.models(), *loaded.models()], min_snr_db=extend.min_snr_db, min_bits=extend.min_bits)
        merged._revoked = set(extend._revoked)
        merged._uncited = {k: v for k, v in {**extend._uncited, **loaded._uncited}.items() if k not in merged._models}
        return merged

    @classmethod
    def _from_document(cls, doc: object, where: str) -> SensorRegistry:
        if not isinstance(doc, dict) or not isinstance(doc.get("models"), list):
            raise InvalidArgumentError(f"{where}: expected an object with a 'models' list")
        minimums = doc.get("minimums", {})
        if not isinstance(minimums, dict):
            raise InvalidArgumentError(f"{where}: 'minimums' must be an object")
        try:
            min_snr_db = float(minimums.get("snr_db", MIN_SNR_DB))
            min_bits = int(minimums.get("bits", MIN_BITS))
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidArgumentError(f"{where}: 'minimums' is malformed ({exc!r})") from None
        if not math.isfinite(min_snr_db):
            raise InvalidArgumentError(f"{where}: minimum SNR must be finite")
        models = []
        for i, entry in enumerate(doc["models"]):
            try:
                model = SensorModel(
                    model_id=str(entry["model_id"]),
                    manufacturer=str(entry["manufacturer"]),
                    snr_db=float(entry["snr_db"]),
                    bits=int(entry["bits"]),
                    **_shape(entry),
                )
            except (KeyError, TypeError, ValueError, OverflowError) as exc:
                raise InvalidArgumentError(f"{where}: model #{i} is malformed ({exc!r})") from None
            if not model.model_id or "/" in model.model_id or not math.isfinite(model.snr_db):
                raise InvalidArgumentError(f"{where}: model #{i} has an invalid id or SNR")
            models.append(model)
        uncited = doc.get("uncited", [])
        if not isinstance(uncited, list):
            raise InvalidArgumentError(f"{where}: 'uncited' must be a list")
        known: dict[str, str] = {}
        for i, entry in enumerate(uncited):
            if not isinstance(entry, dict) or not isinstance(entry.get("model_id"), str) or not entry["model_id"]:
                raise InvalidArgumentError(f"{where}: uncited model #{i} is malformed")
            known[entry["model_id"]] = str(entry.get("why", "no SNR or resolution figure from a cited source"))
        registry = cls(models, min_snr_db=min_snr_db, min_bits=min_bits)
        registry._uncited = {k: v for k, v in known.items() if k not in registry._models}
        return registry

    def models(self) -> list[SensorModel]:
        return list(self._models.values())

    def revoke(self, sensor_id: str) -> None:
        """Refuse ``sensor_id`` from now on; revoking a model id refuses all its serials."""
        model_of(sensor_id)
        self._revoked.add(sensor_id)

    def admit(self, sensor_id: str, *, snr_db: float | None = None, bits: int | None = None) -> SensorModel:
        """Return the certified model of ``sensor_id`` or raise with the reason it is refused.

        ``snr_db``/``bits`` are the values the device reports; the model's certified values
        are checked as well, and the lower of the two must meet the minimum.
        """
        model_id = model_of(sensor_id)
        model = self._models.get(model_id)
        if model is None:
            why = self._uncited.get(model_id)
            if why is not None:
                raise SensorNotCertifiedError(
                    f"sensor model {model_id!r} is known but not certified: {why} (a site registry may add "
                    "a measured figure)"
                )
            raise SensorNotCertifiedError(f"sensor model {model_id!r} is not in the certified registry")
        if sensor_id in self._revoked or model_id in self._revoked:
            raise SensorNotCertifiedError(f"sensor {sensor_id!r} is revoked")
        snr = model.snr_db if snr_db is None else _number(snr_db, "snr_db")
        nbits = model.bits if bits is None else _integer(bits, "bits")
        if min(snr, model.snr_db) < self.min_snr_db:
            raise SensorNotCertifiedError(
                f"sensor {model_id!r} SNR {min(snr, model.snr_db):.1f} dB is below the minimum {self.min_snr_db:.1f} dB"
            )
        if min(nbits, model.bits) < self.min_bits:
            raise SensorNotCertifiedError(
                f"sensor {model_id!r} resolution {min(nbits, model.bits)} bits "
                f"is below the minimum {self.min_bits} bits"
            )
        return model

    def find_by_hash(self, id_hash: bytes, candidates: Iterable[str]) -> str | None:
        """The sensor id among ``candidates`` whose hash is ``id_hash``."""
        if not isinstance(id_hash, bytes):
            raise WrongTypeError(f"id_hash must be bytes, got {type(id_hash).__name__}")
        if isinstance(candidates, str) or not isinstance(candidates, Iterable):
            raise WrongTypeError(f"candidates must be an iterable of sensor ids, got {type(candidates).__name__}")
        for sensor_id in candidates:
            if sensor_id_hash(sensor_id) == id_hash:
                return sensor_id
        return None


def _shape(entry: dict[str, Any]) -> dict[str, Any]:
    """The optional shape fields of a model entry (channels, labels, native rate, source); their
    types are checked by :class:`SensorModel` itself."""
    out: dict[str, Any] = {}
    if "channels" in entry:
        out["channels"] = entry["channels"]
    if "labels" in entry:
        labels = entry["labels"]
        out["labels"] = tuple(labels) if isinstance(labels, list) else labels
    if "native_rate_hz" in entry:
        out["native_rate_hz"] = entry["native_rate_hz"]
    if "source" in entry:
        out["source"] = entry["source"]
    if "synthetic" in entry:
        out["synthetic"] = entry["synthetic"]
    return out


@functools.lru_cache(maxsize=1)
def _packaged_registry() -> SensorRegistry:
    text = resources.files("cortex_sal.keros").joinpath("data/sensor_models.json").read_text("utf-8")
    return SensorRegistry.from_json(text, "the packaged registry")


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WrongTypeError(f"{what} must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise InvalidArgumentError(f"{what} must be finite, got {value!r}")
    return float(value)


def _integer(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise WrongTypeError(f"{what} must be an int, got {type(value).__name__}")
    return value
