"""Mean-scale hyperprior model (Ballé et al. 2018; Minnen et al. 2018 without context).

::

    x ─g_a─► y ─×gain(q)─► y' ─h_a─► z ──round──► ẑ ──[factorized tables]──► z stream
                            │                     │
                            │        exact h_s (fixed point, CPU) ─► μ, σ-index
                            ▼                     ▼
                 r = round(y' − μ) ──[Gaussian tables by σ-index]──► y stream
                 ŷ' = r + μ ─×1/gain(q)─► g_s ─► x̂

Only integers decide probabilities: ẑ, the fixed-point output of h_s, and the stored tables.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import torch
from torch import nn

from ..coding import CdfTables, EscapeReader, EscapeWriter, decode_indexed, encode_indexed
from ..coding import build_factorized_tables, build_gaussian_tables
from ..container import LAYER_Y, LAYER_Z, STREAM_Y, STREAM_Z, Stream
from ..entropy_models import FactorizedDensity, gaussian_likelihood, scale_levels
from ..errors import FormatError
from ..exact import ACT_BITS, ExactNet
from ..layers import GDN, GSDN, LINEAR_SCALE, LinearAnalysis, LinearSynthesis, QualityGain, conv, deconv
from ..tiling import run_tiled

LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800)
LINEAR_START_SCALE = 0.01  # with a linear path, g_s's last layer starts this much smaller
Z_GRID = 255  # z tables are built from the density on -Z_GRID..Z_GRID
# Transforms run on tiles (with halos wider than their receptive fields) so that memory stays
# bounded on large images: image tiles of 1024 px with a 64 px halo, latent tiles of 64 with 4.
ANALYSIS_TILE, ANALYSIS_HALO = 1024, 64
SYNTHESIS_TILE, SYNTHESIS_HALO = 64, 4


def _lower_bound(x: torch.Tensor, bound: float) -> torch.Tensor:
    """max(x, bound) in the forward pass, identity gradient."""
    return x + (x.clamp_min(bound) - x).detach()


def _ste_round(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


class HyperpriorModel(nn.Module):
    """Variable-rate mean-scale hyperprior: transforms, entropy models and the latent codec."""

    name = "hyperprior"
    model_id = 1
    stride = 64  # the image is padded to a multiple of this

    def __init__(
        self,
        N: int = 128,
        M: int = 192,
        lambdas: tuple[float, ...] = LAMBDAS,
        gsdn: bool = False,
        linear_path: bool = False,
    ) -> None:
        """`gsdn`: GSDN / IGSDN (Qian et al. 2021) in the transforms instead of GDN / IGDN.
        `linear_path`: a block-linear path beside g_a and g_s (:class:`LinearAnalysis`)."""
        super().__init__()
        self.config = {"N": N, "M": M, "lambdas": list(lambdas)}
        if gsdn:
            self.config["gsdn"] = True
        if linear_path:
            self.config["linear_path"] = True
        self.lambdas = tuple(lambdas)
        norm = GSDN if gsdn else GDN
        self.g_a = nn.Sequential(
            conv(3, N), norm(N), conv(N, N), norm(N), conv(N, N), norm(N), conv(N, M)
        )
        self.g_s = nn.Sequential(
            deconv(M, N), norm(N, inverse=True), deconv(N, N), norm(N, inverse=True),
            deconv(N, N), norm(N, inverse=True), deconv(N, 3),
        )
        self.h_a = nn.Sequential(
            conv(M, N, 3, 1), nn.LeakyReLU(inplace=True), conv(N, N), nn.LeakyReLU(inplace=True),
            conv(N, N),
        )
        self.h_s = nn.Sequential(
            deconv(N, M), nn.ReLU(), deconv(M, M * 3 // 2), nn.ReLU(), conv(M * 3 // 2, 2 * M, 3, 1)
        )
        self.g_a_linear = LinearAnalysis(M) if linear_path else None
        self.g_s_linear = LinearSynthesis(M) if linear_path else None
        if linear_path:  # start as the linear codec: the non-linear synthesis adds almost nothing
            with torch.no_grad():
                self.g_s[-1].weight.mul_(LINEAR_START_SCALE)
                self.g_s[-1].bias.zero_()
        self.gain = QualityGain(len(lambdas), M, lambdas)
        self.inv_gain = QualityGain(len(lambdas), M, lambdas, inverse=True)
        self.z_density = FactorizedDensity(N)
        self.tables: dict[str, CdfTables] = {}
        self._exact_h_s: ExactNet | None = None

    @property
    def quality_range(self) -> tuple[float, float]:
        return (1.0, float(len(self.lambdas)))

    # --------------------------------------------------------------- transforms
    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        """g_a(x), plus the linear path where the model has one."""
        y = self.g_a(x)
        return y if self.g_a_linear is None else y + self.g_a_linear(x)

    def synthesis(self, y: torch.Tensor) -> torch.Tensor:
        """g_s(y), plus the linear path where the model has one (g_s then sees y / LINEAR_SCALE,
        latents of the size it sees without the linear path)."""
        if self.g_s_linear is None:
            return self.g_s(y)
        return self.g_s(y * (1.0 / LINEAR_SCALE)) + self.g_s_linear(y)

    # ----------------------------------------------------------------- training
    def forward(self, x: torch.Tensor, quality: torch.Tensor) -> dict:
        """Training pass: x in [0, 1], quality (B,) floats. Returns x_hat and likelihoods."""
        y = self.analysis(x) * self.gain(quality)[:, :, None, None]
        z = self.h_a(y)
        z_lik = self.z_density.likelihood(z + torch.empty_like(z).uniform_(-0.5, 0.5))
        mean, scale = self.h_s(_ste_round(z)).chunk(2, dim=1)
        scale = _lower_bound(scale, 0.11)
        y_lik = gaussian_likelihood(y + torch.empty_like(y).uniform_(-0.5, 0.5), mean, scale)
        y_hat = _ste_round(y - mean) + mean
        x_hat = self.synthesis(y_hat * self.inv_gain(quality)[:, :, None, None])
        return {"x_hat": x_hat, "likelihoods": {"y": y_lik, "z": z_lik}}

    def _train_latents(self, x: torch.Tensor, quality: torch.Tensor):
        """Shared start of the context models' training passes: (y', z likelihood, hyper
        features h_s(round(z)), y' + uniform noise)."""
        y = self.analysis(x) * self.gain(quality)[:, :, None, None]
        z = self.h_a(y)
        z_lik = self.z_density.likelihood(z + torch.empty_like(z).uniform_(-0.5, 0.5))
        hyper = self.h_s(_ste_round(z))
        return y, z_lik, hyper, y + torch.empty_like(y).uniform_(-0.5, 0.5)

    # ------------------------------------------------------------ entropy tables
    def build_tables(self) -> dict[str, np.ndarray]:
        """Integer tables from the trained float model (export time), also installed on self."""
        levels = scale_levels()
        arrays = {"y.scale_bounds": np.round(levels * (1 << ACT_BITS)).astype(np.int64)}
        arrays.update(build_gaussian_tables(levels).as_arrays("y"))
        pmf = self.z_density.pmf_grid(-Z_GRID, Z_GRID)
        arrays.update(build_factorized_tables(pmf, -Z_GRID).as_arrays("z"))
        self.load_tables(arrays)
        return arrays

    def load_tables(self, arrays: dict[str, np.ndarray]) -> None:
        self.tables = {k: CdfTables.from_arrays(arrays, k) for k in ("y", "z")}
        self.scale_bounds = np.asarray(arrays["y.scale_bounds"], dtype=np.int64)
        self._exact_h_s = None

    @property
    def exact_h_s(self) -> ExactNet:
        if self._exact_h_s is None:
            self._exact_h_s = ExactNet(self.h_s)
        return self._exact_h_s

    # ---------------------------------------------------------------- the codec
    def header_params(self) -> bytes:
        """The model parameters the encoder writes into the header (none for this model)."""
        return b""

    def check_params(self, params: bytes) -> None:
        """Refuse header params this model does not define."""
        if params:
            raise FormatError(f"corrupt: {self.name} files carry no model params ({len(params)} bytes found)")

    def _entropy_params(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
        """Exact mean (float32, multiple of 2^-ACT_BITS) and scale-table index of every y."""
        out = self.exact_h_s(z_hat)
        mean_int, scale_int = out.chunk(2, dim=1)
        index = np.searchsorted(self.scale_bounds, scale_int.numpy().ravel(), side="left")
        index = np.minimum(index, len(self.scale_bounds) - 1)
        mean = mean_int.to(torch.float32) / float(1 << ACT_BITS)
        return mean, index

    def _z_index(self, shape: tuple[int, ...]) -> np.ndarray:
        c, h, w = shape[1:]
        return np.repeat(np.arange(c), h * w)

    @torch.no_grad()
    def analyze(self, x: torch.Tensor) -> torch.Tensor:
        """The quality-independent analysis of of a padded (1, 3, H, W) image in [0, 1]."""
        return run_tiled(self.analysis, x, Fraction(1, 16), ANALYSIS_TILE, ANALYSIS_HALO)

    @torch.no_grad()
    def compress(
        self,
        analysis: torch.Tensor,
        quality: float,
        escapes: EscapeWriter,
        synthesize: bool = True,
    ) -> tuple[list[Stream], int, torch.Tensor | None]:
        """Code the analysis of one padded image at `quality`.

        Returns the streams, the layer flags and (if `synthesize`) the reconstruction, which is
        exactly what the decoder computes on the same machine.
        """
        q = torch.tensor([quality], device=analysis.device)
        y = (analysis * self.gain(q)[:, :, None, None]).float()
        z_hat = torch.round(self.h_a(y)).cpu().to(torch.int64)
        z_data, z_count = encode_indexed(
            z_hat.numpy().ravel(), self._z_index(z_hat.shape), self.tables["z"], escapes
        )
        z_hat = self._decoded_z(z_hat.numpy().ravel(), z_hat.shape)
        mean, index = self._entropy_params(z_hat)
        residual = torch.round(y.cpu() - mean).to(torch.int64)
        y_data, y_count = encode_indexed(residual.numpy().ravel(), index, self.tables["y"], escapes)
        x_hat = self._synthesize(residual, mean, quality, analysis.device) if synthesize else None
        streams = [Stream(STREAM_Z, z_data, z_count), Stream(STREAM_Y, y_data, y_count)]
        return streams, LAYER_Z | LAYER_Y, x_hat

    def _decoded_z(self, values: np.ndarray, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(values, dtype=np.int64)).view(*shape)

    def _synthesize(
        self, residual: torch.Tensor, mean: torch.Tensor, quality: float, device: torch.device
    ) -> torch.Tensor:
        y_hat = (residual.to(torch.float32) + mean).to(device, memory_format=torch.channels_last)
        q = torch.tensor([quality], device=device)
        y_hat = y_hat * self.inv_gain(q)[:, :, None, None]
        return run_tiled(self.synthesis, y_hat, 16, SYNTHESIS_TILE, SYNTHESIS_HALO).clamp_(0.0, 1.0)

    def _decode_z(
        self, streams: dict[int, Stream], padded_hw: tuple[int, int], escapes: EscapeReader
    ) -> tuple[torch.Tensor, tuple[int, ...]]:
        """Check the z and y streams against the image size, then decode ẑ; returns (ẑ, y shape)."""
        for kind in (STREAM_Z, STREAM_Y):
            if kind not in streams:
                raise FormatError("corrupt: a latent stream is missing")
        h, w = padded_hw
        N, M = self.config["N"], self.config["M"]
        z_shape = (1, N, h // 64, w // 64)
        y_shape = (1, M, h // 16, w // 16)
        for kind, shape in ((STREAM_Z, z_shape), (STREAM_Y, y_shape)):
            if streams[kind].symbols != int(np.prod(shape)):
                raise FormatError("corrupt: symbol count does not match the image size")
        z_values = decode_indexed(streams[STREAM_Z].data, self._z_index(z_shape), self.tables["z"], escapes)
        return self._decoded_z(z_values, z_shape), y_shape

    def decode_latents(
        self, streams: dict[int, Stream], padded_hw: tuple[int, int], escapes: EscapeReader
    ) -> dict[str, torch.Tensor]:
        """Entropy-decode ẑ and the y residuals; everything here is exact integer work.

        Returns z_hat, residual (int64), mean (float32) and index (int64, scale-table index).
        """
        z_hat, y_shape = self._decode_z(streams, padded_hw, escapes)
        mean, index = self._entropy_params(z_hat)
        r = decode_indexed(streams[STREAM_Y].data, index, self.tables["y"], escapes)
        return {
            "z_hat": z_hat,
            "residual": torch.from_numpy(r).view(*y_shape),
            "mean": mean,
            "index": torch.from_numpy(index).view(*y_shape),
        }

    @torch.no_grad()
    def decompress(
        self,
        streams: dict[int, Stream],
        padded_hw: tuple[int, int],
        quality: float,
        escapes: EscapeReader,
        device: torch.device,
        layer_flags: int = LAYER_Z | LAYER_Y,
        params: bytes = b"",
    ) -> torch.Tensor:
        """Rebuild the padded image (1, 3, H, W) in [0, 1] from the streams."""
        self.check_params(params)
        if layer_flags != LAYER_Z | LAYER_Y:
            raise FormatError(f"corrupt: {self.name} files carry layers z and y (flags {layer_flags:#x})")
        latents = self.decode_latents(streams, padded_hw, escapes)
        return self._synthesize(latents["residual"], latents["mean"], quality, device)
