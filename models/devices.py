"""Where implicit's models train: on the CPU, or on an NVIDIA GPU through ``implicit.gpu``.

``implicit.gpu.HAS_CUDA`` is true only where implicit's CUDA extension loads, RMM is installed
(``pip install rmm-cu13``) and a GPU answers; elsewhere asking for ``cuda`` is refused with the reason,
and ``auto`` quietly means ``cpu``. Factors trained on the GPU come back to host memory (``to_numpy``),
so the exported embeddings, saving and serving are the same whichever device fitted them.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from recsys.errors import ModelError

Device = Literal["cpu", "cuda"]
DEVICES = ("auto", "cpu", "cuda")
GPU_FAMILIES = ("als", "bpr")


def gpu_available() -> bool:
    """Whether implicit can train on a GPU here."""
    try:
        import implicit.gpu
    except ImportError:
        return False
    return bool(implicit.gpu.HAS_CUDA)


def resolve_device(requested: str, family: str) -> Device:
    """``cpu`` or ``cuda`` for a requested ``auto``, ``cpu`` or ``cuda`` and a model family."""
    if requested not in DEVICES:
        raise ModelError(f"device must be one of {', '.join(DEVICES)}; got {requested!r}")
    if requested == "cpu":
        return "cpu"
    if family not in GPU_FAMILIES:
        if requested == "cuda":
            only = ", ".join(GPU_FAMILIES)
            raise ModelError(f"the {family} family has no GPU version; device cuda works with {only}")
        return "cpu"
    if gpu_available():
        return "cuda"
    if requested == "cuda":
        raise ModelError(
            "device cuda needs an NVIDIA GPU and implicit's GPU support, and implicit.gpu.HAS_CUDA is false here "
            "(no GPU found, or RMM not installed: pip install rmm-cu13); use device cpu or auto"
        )
    return "cpu"


def host(factors: Any) -> npt.NDArray[np.float32]:
    """Factors as a numpy array in host memory (a GPU matrix of ``implicit.gpu`` is copied back)."""
    to_numpy = getattr(factors, "to_numpy", None)
    return np.asarray(to_numpy() if callable(to_numpy) else factors, dtype=np.float32)
