"""The torch device a codec, a benchmark or a training run uses: one resolver for all of them."""
from __future__ import annotations

import torch

from .errors import ModelError


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' -> cuda when available, else cpu; 'cpu', 'cuda' or 'cuda:N' as given.

    A CUDA device without a GPU, or any other name, is a ModelError.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        resolved = None
    if resolved is None or resolved.type not in ("cpu", "cuda"):
        raise ModelError(f"unknown device '{device}' (use auto, cpu or cuda)")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"--device {device} requested but no CUDA GPU is available")
    return resolved
