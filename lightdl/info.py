"""`lightdl info`: versions, the active backend, and where the native kernels run (or why not)."""

from __future__ import annotations

import platform

import torch

from lightdl._version import __version__
from lightdl.ops import build_info


def info_lines() -> list[str]:
    """The report as lines of text."""
    bi = build_info()
    lines = [
        f"lightdl {__version__}",
        f"torch {torch.__version__} (built with CUDA {torch.version.cuda or 'none'}), "
        f"Python {platform.python_version()}, {platform.machine()}",
        f"backend: {bi['backend']}",
        f"extension: {bi['extension']}",
    ]
    if "cpu_isa" in bi:
        lines.append(f"  built with gcc {bi['compiler']}, CUDA sources: {'yes' if bi['with_cuda'] else 'no'}")
        lines.append(f"  CPU kernels use: {bi['cpu_isa']} (cap with LIGHTDL_CPU_ISA=default|avx2)")
        lines.append(f"  LSTM/GRU GEMMs on CPU (per step, weight gradients): {bi['rnn_cpu_gemm']} "
                     "(LIGHTDL_RNN_CPU_GEMM=mkl selects MKL's)")
        lines.append(f"  LSTM forward step on CPU: {bi['lstm_cpu_step']} "
                     "(LIGHTDL_LSTM_FUSED_STEP=0 keeps the GEMM and the gate math apart)")
    lines.append(f"  CPU threads: {torch.get_num_threads()}")
    lines.append("devices:")
    native = bi["native_devices"]
    assert isinstance(native, dict)
    for dev in ("cpu", "cuda"):
        reason = native[dev]
        present = dev == "cpu" or torch.cuda.is_available()
        if dev == "cuda" and not present:
            extra = "no CUDA device visible"
            reason = f"{reason}; {extra}" if reason else extra
        if dev == "cuda" and present:
            dev_name = f"cuda ({torch.cuda.get_device_name(0)})"
        else:
            dev_name = dev
        kernels = "native kernels" if reason is None else f"reference ops — {reason}"
        lines.append(f"  {dev_name}: {kernels}")
    return lines


def main() -> int:
    """`lightdl info`: prints `info_lines()`."""
    print("\n".join(info_lines()))
    return 0
