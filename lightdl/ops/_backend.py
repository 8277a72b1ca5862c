"""Loading of the compiled kernels (lightdl._C) and the choice between backends.

"native" runs our C++/CUDA kernels through torch.ops.lightdl; "reference" runs the
pure-PyTorch reference of each op. If the extension cannot load, lightdl still imports,
every op runs its reference, and one warning says why.
"""

from __future__ import annotations

import importlib
import os
import warnings
from types import ModuleType

import torch

BACKENDS = ("native", "reference")

_C: ModuleType | None = None
_load_error: str | None = None


def _load() -> None:
    global _C, _load_error
    if os.environ.get("LIGHTDL_NO_EXT") == "1":
        _load_error = "LIGHTDL_NO_EXT=1 is set"
    else:
        try:  # importing it registers torch.ops.lightdl.*
            _C = importlib.import_module("lightdl._C")
        except ModuleNotFoundError as exc:
            _load_error = (
                "lightdl._C is not built (installed with LIGHTDL_NO_EXT=1, or its build "
                f"failed: {exc})"
            )
        except ImportError as exc:  # built, but against another torch or missing a library
            _load_error = f"lightdl._C could not be loaded ({exc})"
    if _C is None:
        warnings.warn(
            f"lightdl: compiled kernels unavailable: {_load_error}; running the pure-PyTorch "
            "reference ops (rebuild with `pip install --no-build-isolation -e .`).",
            RuntimeWarning,
            stacklevel=3,
        )


_load()

# A module-level string (not a thread-local) so torch.compile can guard on it.
_backend: str = "native" if _C is not None else "reference"


def native_devices() -> dict[str, str | None]:
    """Device type -> None if our kernels run there, else the reason they do not."""
    if _C is None:
        return {"cpu": _load_error, "cuda": _load_error}
    cuda_reason = None
    if not _C.with_cuda:
        cuda_reason = "the extension was built without CUDA sources"
        if torch.version.cuda is None:
            cuda_reason += " (the installed torch is a CPU build)"
    return {"cpu": None, "cuda": cuda_reason}


def get_backend() -> str:
    """The active backend: "native" or "reference"."""
    return _backend


def use_native(t: torch.Tensor) -> bool:
    """Whether an op on tensor `t` runs our kernels under the current backend."""
    if _backend != "native" or _C is None:
        return False
    return t.device.type == "cpu" or (t.device.type == "cuda" and bool(_C.with_cuda))


class use_backend:
    """Select the backend of every lightdl op: as a call it switches globally, as a context
    manager it switches for the block and restores the previous backend after.

        lightdl.ops.use_backend("reference")
        with lightdl.ops.use_backend("native"):
            ...
    """

    def __init__(self, name: str) -> None:
        global _backend
        if name not in BACKENDS:
            raise ValueError(f"use_backend: name must be one of {BACKENDS}, got {name!r}")
        if name == "native" and _C is None:
            raise RuntimeError(f"use_backend('native'): the compiled kernels are unavailable: {_load_error}")
        self._previous = _backend
        _backend = name

    def __enter__(self) -> use_backend:
        return self

    def __exit__(self, *exc: object) -> None:
        global _backend
        _backend = self._previous


def build_info() -> dict[str, object]:
    """What `lightdl info` reports about the kernels."""
    info: dict[str, object] = {
        "backend": _backend,
        "extension": "loaded" if _C is not None else f"unavailable: {_load_error}",
        "native_devices": native_devices(),
    }
    if _C is not None:
        info["cpu_isa"] = _C.cpu_isa()
        info["rnn_cpu_gemm"] = _C.rnn_cpu_gemm()
        info["lstm_cpu_step"] = _C.lstm_cpu_step()
        info["compiler"] = _C.compiler
        info["with_cuda"] = bool(_C.with_cuda)
    return info
