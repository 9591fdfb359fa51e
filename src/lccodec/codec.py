"""Image <-> .lic bytes with one model: padding, modes, alpha, quality and rate targets.

:class:`Codec` binds a model and its weights to a device. It is what the public functions in
:mod:`lccodec` and the CLI use::

    codec = open_model("hyperprior")
    enc = codec.encode(image, quality=4.0)   # Encoded: .data, .reconstruction, .bpp, .psnr
    pixels = codec.decode(enc.data)          # == enc.reconstruction on this machine
"""
from __future__ import annotations

import functools
import math
import numbers
import os
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import container
from .coding import EscapeReader, EscapeWriter
from .container import STREAM_ALPHA, STREAM_ESCAPE, Header, Stream
from .default_model import DEFAULT_MODEL
from .device import resolve_device
from .errors import FormatError, LicError, LicWarning, ModelError, StreamError
from .imageio import RasterImage, load_image
from .metadata import Metadata
from .metrics import psnr
from .models import LicModel, ModelSpec, build_model, model_by_id, model_by_name, weights_path
from .released_weights import find_release
from .side_streams import alpha_from_png, alpha_to_png, check_escapes_used, check_side_streams
from .weights_io import (
    SHARED_FIELD, WeightsIdentity, load_weights, part_path, read_metadata, read_weights, stored_bytes,
)


@dataclass
class Encoded:
    """The result of an encode: the file bytes and what the decoder will reconstruct."""

    data: bytes
    reconstruction: np.ndarray  # H x W x C uint8, C = channels of `mode`
    mode: str
    quality: float
    bpp: float
    psnr: float  # PSNR of the colour channels, dB (inf when identical)
    warnings: list[str] = field(default_factory=list)
    metadata: Metadata = field(default_factory=Metadata)  # the ICC profile, EXIF and XMP the file carries


@dataclass
class LatentInputs:
    """What a model's latent decoder needs from a parsed .lic file."""

    header: Header
    streams: dict[int, Stream]  # by kind
    padded_hw: tuple[int, int]  # the image size padded to the model's stride
    escapes: EscapeReader


def latent_inputs(header: Header, streams: list[Stream], stride: int) -> LatentInputs:
    """Streams by kind, the padded size and a reader over the escape stream."""
    by_kind = {s.kind: s for s in streams}
    padded = (-(-header.height // stride) * stride, -(-header.width // stride) * stride)
    escape = by_kind.get(STREAM_ESCAPE)
    return LatentInputs(header, by_kind, padded, EscapeReader(escape.data if escape else b""))


class Codec:
    """One model with its weights on one device."""

    def __init__(self, spec: ModelSpec, device: str = "auto", weights: str | os.PathLike | None = None) -> None:
        """`weights`: a weights file of `spec`'s model (an older release, say) instead of the
        shipped one."""
        self.spec = spec
        self.device = resolve_device(device)
        self.weights_given = weights is not None
        self.weights_path = Path(weights) if weights is not None else weights_path(spec)
        self.model, self.meta = load_model(spec, self.weights_path)
        self.weights_identity: WeightsIdentity = self.meta["identity"]
        self.weights_id: int = self.weights_identity.weights_id
        self.weights_bytes = stored_bytes(self.weights_path, self.meta.get(SHARED_FIELD))  # with its part
        # channels_last is faster for these convolutions on CPU (oneDNN) and GPU; it cannot
        # change a bitstream: the exact entropy path makes its own contiguous integer tensors.
        self.model.eval().to(self.device, memory_format=torch.channels_last)
        self._lock = threading.Lock()

    @property
    def quality_range(self) -> tuple[float, float]:
        return self.model.quality_range

    # ------------------------------------------------------------------ encode
    def _check_quality(self, quality: float) -> float:
        lo, hi = self.quality_range
        if not (isinstance(quality, (int, float)) and math.isfinite(quality) and lo <= quality <= hi):
            raise ModelError(f"quality must be a number from {lo:g} to {hi:g}, got {quality!r}")
        return round(quality * 256) / 256

    def _prepare(self, image: RasterImage) -> tuple[torch.Tensor, torch.Tensor]:
        """(padded input tensor, quality-independent analysis)."""
        pixels = image.pixels
        if pixels.shape[2] == 1:
            pixels = np.repeat(pixels, 3, axis=2)
        x = torch.from_numpy(np.ascontiguousarray(pixels)).to(self.device)
        x = x.permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
        s = self.model.stride
        h, w = x.shape[2:]
        x = F.pad(x, (0, (-w) % s, 0, (-h) % s), mode="replicate")
        x = x.contiguous(memory_format=torch.channels_last)
        return x, self.model.analyze(x)

    def analyze(self, image: RasterImage) -> torch.Tensor:
        """The quality-independent analysis of `image` (padded to the model's stride)."""
        with self._lock, torch.inference_mode():
            return self._prepare(image)[1]

    def _to_pixels(self, x_hat: torch.Tensor, height: int, width: int, channels: int) -> np.ndarray:
        rgb = x_hat[0, :, :height, :width].mul(255.0).round_().clamp_(0, 255).to(torch.uint8)
        rgb = rgb.permute(1, 2, 0).cpu().numpy()
        if channels == 1:  # grayscale input was coded as three equal planes
            rgb = np.round(rgb.astype(np.float32).mean(axis=2, keepdims=True)).astype(np.uint8)
        return rgb

    def _encode_at(self, image: RasterImage, analysis: torch.Tensor, quality: float, synthesize: bool = True) -> Encoded:
        escapes = EscapeWriter()
        streams, flags, x_hat = self.model.compress(analysis, quality, escapes, synthesize)
        streams.append(Stream(STREAM_ESCAPE, escapes.getvalue(), escapes.count))
        if image.alpha is not None:
            streams.append(Stream(STREAM_ALPHA, alpha_to_png(image.alpha), image.alpha.size))
        streams += image.metadata.to_streams()
        header = Header(
            model_id=self.spec.model_id,
            weights_id=self.weights_id,
            quality_q8=round(quality * 256),
            width=image.width,
            height=image.height,
            mode=image.mode,
            layer_flags=flags,
            params=self.model.header_params(),
            version=container.format_version(streams),
        )
        data = container.pack(header, streams)
        bpp = len(data) * 8.0 / (image.width * image.height)
        if x_hat is None:
            return Encoded(data, np.empty(0, np.uint8), image.mode, quality, bpp, math.nan,
                           list(image.warnings), image.metadata)
        colour = self._to_pixels(x_hat, image.height, image.width, image.pixels.shape[2])
        recon = colour if image.alpha is None else np.concatenate([colour, image.alpha[..., None]], axis=2)
        return Encoded(data, recon, image.mode, quality, bpp, psnr(colour, image.pixels),
                       list(image.warnings), image.metadata)

    def encode(
        self,
        image: object,
        quality: float | None = None,
        *,
        bpp: float | None = None,
        psnr: float | None = None,
        size: int | None = None,
    ) -> Encoded:
        """Encode an image (anything :func:`lccodec.imageio.load_image` accepts).

        Give one of `quality` (continuous, within :attr:`quality_range`), `bpp` (largest file
        with at most that many bits per pixel), `size` (largest file of at most that many bytes)
        or `psnr` (smallest file with at least that PSNR). What was changed or missed comes back
        in ``.warnings`` and as :class:`lccodec.LicWarning` warnings.
        """
        targets = [t is not None for t in (quality, bpp, psnr, size)]
        if sum(targets) > 1:
            raise ModelError("give only one of quality, bpp, psnr and size")
        raster = image if isinstance(image, RasterImage) else load_image(image)
        with self._lock, torch.inference_mode():
            x, analysis = self._prepare(raster)
            del x
            if size is not None:
                if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size <= 0:
                    raise ModelError(f"--size must be a positive number of bytes, got {size!r}")
                enc = self._search(raster, analysis, "bpp", size * 8 / (raster.width * raster.height),
                                   f"{size} bytes")
            elif bpp is not None:
                enc = self._search(raster, analysis, "bpp", float(bpp))
            elif psnr is not None:
                enc = self._search(raster, analysis, "psnr", float(psnr))
            else:
                enc = self._encode_at(raster, analysis, self._check_quality(4.0 if quality is None else quality))
        for w in enc.warnings:
            warnings.warn(w, LicWarning, stacklevel=2)
        return enc

    def _search(self, image: RasterImage, analysis: torch.Tensor, target: str, value: float,
                label: str | None = None) -> Encoded:
        """Bisection over the header's quality steps on real encodes."""
        if not math.isfinite(value) or value <= 0:
            raise ModelError(f"--{target} must be a positive number, got {value!r}")
        label = label or f"{value:g} {'bpp' if target == 'bpp' else 'dB'}"
        lo_q, hi_q = (round(q * 256) for q in self.quality_range)

        def ok(q8: int) -> tuple[bool, Encoded]:
            enc = self._encode_at(image, analysis, q8 / 256, synthesize=(target == "psnr"))
            return (enc.bpp <= value if target == "bpp" else enc.psnr >= value), enc

        if target == "bpp":  # largest quality whose file fits
            good, _ = ok(lo_q)
            if not good:
                best = lo_q
                note = f"cannot reach {label}; lowest quality used"
            else:
                lo, hi = lo_q, hi_q  # invariant: lo fits
                if ok(hi)[0]:
                    lo = hi
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    lo, hi = (mid, hi) if ok(mid)[0] else (lo, mid)
                best, note = lo, ""
        else:  # smallest quality reaching the PSNR
            good, _ = ok(hi_q)
            if not good:
                best = hi_q
                note = f"cannot reach {label}; highest quality used"
            else:
                lo, hi = lo_q, hi_q  # invariant: hi reaches
                if ok(lo)[0]:
                    hi = lo
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    lo, hi = (lo, mid) if ok(mid)[0] else (mid, hi)
                best, note = hi, ""
        enc = self._encode_at(image, analysis, best / 256)
        if note:
            enc.warnings.append(note)
        return enc

    # ------------------------------------------------------------------ decode
    def _other_weights(self, weights_id: int) -> str:
        """Why a file made with weights `weights_id` cannot be decoded, and where those are."""
        name, wid = self.spec.name, f"{weights_id:08x}"
        have = (f"the weights '{self.weights_path}' are {self.weights_identity.hex}" if self.weights_given
                else f"this lic has {self.weights_identity.hex}")
        release = find_release(name, wid)
        if release is None:
            return (f"file was made with {name} weights {wid}, which no lic release shipped; {have}: "
                    f"decode it with `lic decode --weights FILE` and the weights that made it")
        return (f"file was made with {name} weights {wid} ({release.describe()}); {have}: get them with "
                f"`{release.how_to_get()}` in a clone of lic, then `lic decode --weights "
                f"{release.local_name} ...` (docs/weights.md)")

    def decode(self, data: bytes) -> np.ndarray:
        """Decode .lic bytes made by this model: H x W x C uint8 (C from the file's mode)."""
        header, streams = container.unpack(data)
        return self.decode_parsed(header, streams)

    def latent_inputs(self, data: bytes) -> LatentInputs:
        """Parse .lic bytes into what `self.model.decode_latents` takes (for checks and tests)."""
        return latent_inputs(*container.unpack(data), self.model.stride)

    def decode_parsed(self, header: Header, streams: list[Stream]) -> np.ndarray:
        if header.model_id != self.spec.model_id:
            raise FormatError(f"file was made by model id {header.model_id}, not {self.spec.name}")
        if header.weights_id != self.weights_id:
            raise ModelError(self._other_weights(header.weights_id))
        lo, hi = self.quality_range
        quality = header.quality_q8 / 256
        if not lo <= quality <= hi:
            raise FormatError(f"corrupt: quality {quality:g} is outside {lo:g}..{hi:g}")
        inputs = latent_inputs(header, streams, self.model.stride)
        by_kind, escapes = inputs.streams, inputs.escapes
        check_side_streams(header, by_kind)
        try:
            with self._lock, torch.inference_mode():
                x_hat = self.model.decompress(
                    by_kind, inputs.padded_hw, quality, escapes, self.device,
                    layer_flags=header.layer_flags, params=header.params,
                )
            check_escapes_used(escapes, by_kind[STREAM_ESCAPE])
        except StreamError as exc:  # damaged, or relabelled: another model's streams fail the same way
            raise StreamError(f"{exc}; the streams do not fit the {self.spec.name} model named in the header") from None
        channels = 1 if header.mode in ("L", "LA") else 3
        colour = self._to_pixels(x_hat, header.height, header.width, channels)
        if header.mode in ("LA", "RGBA"):
            alpha = alpha_from_png(by_kind[STREAM_ALPHA].data, header.width, header.height)
            colour = np.concatenate([colour, alpha[..., None]], axis=2)
        return colour


def load_model(spec: ModelSpec, path: Path) -> tuple[LicModel, dict]:
    """A model of `spec` built with the config of the weights file `path` and loaded with its
    weights (verified); returns it and the file's metadata."""
    meta = read_metadata(path)
    if meta.get("model") != spec.name:
        raise ModelError(f"weights '{path}' are for model {meta.get('model')!r}, not {spec.name}")
    try:
        model = build_model(spec, meta["config"])
    except ModelError as exc:
        raise ModelError(f"weights '{path}': {exc}") from None
    return model, load_weights(path, model)


def _model_of_weights(path: str | os.PathLike) -> str:
    """The model a weights file is for (its metadata), or a ModelError naming the file."""
    name = read_metadata(path).get("model")  # a ModelError naming the file when it is missing or not one
    if not isinstance(name, str):
        raise ModelError(f"weights '{path}' do not name their model")
    return name


FileStat = tuple[int, int, int, int]  # size, mtime, ctime (ns), inode: what a change alters


@functools.lru_cache(maxsize=32)
def _cached_codec(name: str, device: str, weights: tuple[str, FileStat, FileStat | None], given: bool) -> Codec:
    return Codec(model_by_name(name), device, weights[0] if given else None)


def _stat(path: str | os.PathLike) -> FileStat:
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


@functools.lru_cache(maxsize=64)
def _shared_part(path: str, stat: FileStat) -> str | None:
    """The part file a weights file names (its metadata), by the file's path and stat."""
    return read_weights(path, tensors=False)[0].get(SHARED_FIELD)


def _file_key(path: str | os.PathLike) -> tuple[str, FileStat, FileStat | None]:
    """A weights file's cache key: its path and stat, and the stat of the part it shares (None:
    no part, or none there). A file or part replaced or changed since it was loaded is loaded
    and verified again."""
    path = os.fspath(path)
    try:
        own = _stat(path)
    except OSError as exc:
        raise ModelError(f"cannot read weights '{path}': {exc.strerror}") from None
    part = _shared_part(path, own)
    try:
        return path, own, None if part is None else _stat(part_path(path, part))
    except OSError:  # a missing part: the load says so
        return path, own, None


def open_model(name: str | None = None, device: str = "auto", weights: str | os.PathLike | None = None) -> Codec:
    """The codec of model `name` on `device` ('auto', 'cpu' or 'cuda'); cached per weights file.

    `weights`: a weights file of that model to use instead of the shipped one (one `lic train`
    exported, or an older release's to decode its files: docs/weights.md). `name` None: the
    model `weights` is for, else DEFAULT_MODEL.
    """
    if name is None:
        name = _model_of_weights(weights) if weights is not None else DEFAULT_MODEL
    spec = model_by_name(name)
    key = _file_key(weights_path(spec) if weights is None else weights)
    return _cached_codec(spec.name, str(resolve_device(device)), key, weights is not None)


def decode_bytes(
    data: bytes, device: str = "auto", max_pixels: int = container.DEFAULT_MAX_PIXELS,
    weights: str | os.PathLike | None = None,
) -> tuple[Header, np.ndarray, Metadata]:
    """Decode any .lic file with the model its header names (and the weights file `weights`
    instead of the shipped one, if given): its header, pixels and metadata.

    Files declaring more than `max_pixels` are refused before any decoding work: a tiny file
    can otherwise ask for a large (valid) decode.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise FormatError("decode expects the bytes of a .lic file")
    header, streams = container.unpack(bytes(data), max_pixels=max_pixels)
    spec = model_by_id(header.model_id)
    pixels = open_model(spec.name, device, weights).decode_parsed(header, streams)
    return header, pixels, Metadata.from_streams({s.kind: s for s in streams})  # checked before decoding


__all__ = ["Codec", "Encoded", "LatentInputs", "LicError", "decode_bytes", "latent_inputs", "open_model", "psnr", "resolve_device"]
