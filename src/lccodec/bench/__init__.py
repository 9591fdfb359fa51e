"""`lic bench`: measure codecs on real files — rate, distortion, speed — and compare curves.

Modules, one concept each (the metrics live in the core, lccodec.metrics):
  bdrate     Bjøntegaard delta rate / PSNR between two rate–distortion curves
  anchors    Curve, and loading/saving CompressAI-layout result files
  baselines  Pillow codecs (JPEG 4:4:4/4:2:0, WebP, AVIF, optional JPEG XL)
  runner     the encode → bytes → decode loop, per-image rows and per-quality aggregates
  report     summary table, JSON and CSV output (atomic writes)
  plot       RD chart (optional matplotlib)
  cli        the click command `bench`
"""
from ..errors import LicError


class BenchError(LicError):
    """Bad benchmark input: unknown codec, empty folder, unreadable anchor, missing extra."""
