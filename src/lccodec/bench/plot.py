"""RD chart (PSNR vs bpp), one line per curve. Needs the optional extra `lccodec[plot]`."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..atomic import atomic_path
from . import BenchError
from .anchors import Curve

MISSING = "--plot needs matplotlib: pip install 'lccodec[plot]'"


def require_matplotlib() -> None:
    """Raise BenchError with a one-line hint when matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise BenchError(MISSING) from None


def plot_rd(path: str | Path, curves: Sequence[Curve], title: str = "") -> None:
    """Write a PSNR-vs-bpp chart to path (format from its suffix, e.g. .png), atomically."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(7, 5), dpi=120)
    try:
        for c in curves:
            pts = sorted(zip(c.bpp, c.psnr))
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "--" if c.is_anchor else "-",
                    marker="" if c.is_anchor else "o", markersize=3, label=c.name)
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel("PSNR RGB (dB)")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", bbox_inches="tight")
    finally:
        plt.close(fig)
