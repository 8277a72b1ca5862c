"""The machine's limits the benchmarks are held against: copy bandwidth, GEMM rate and, on
CPU, the multiply-add peak, measured on the same device, dtype and thread count as the ops."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lightdl.bench.timing import Timer
from lightdl.ops import _backend

# Iterations of the multiply-add loop per thread and call: ~1 ms at AVX-512's rate, ~5 ms
# on the SSE2 baseline.
_FMA_ITERS = 500_000


@dataclass
class Limits:
    copy_gbs: float  # GB/s of dst.copy_(src) (read + write counted)
    gemm_gflops: float  # GFLOP/s of a square torch.mm
    # CPU float32: GFLOP/s of lightdl's register-only multiply-add loop in the vectors its
    # kernels use (csrc/cpu/fma_peak.cpp) on every thread; None where not measured.
    fma_gflops: float | None = None

    @property
    def compute_gflops(self) -> float:
        """The compute bound of the % limit column: the multiply-add peak where measured. The
        GEMM rate is not a bound on every CPU: MKL runs AVX2 kernels on AMD CPUs with AVX-512."""
        return max(self.gemm_gflops, self.fma_gflops or 0.0)

    def as_dict(self) -> dict[str, float]:
        out = {"copy_GBs": round(self.copy_gbs, 2), "gemm_GFLOPs": round(self.gemm_gflops, 2)}
        if self.fma_gflops is not None:
            out["fma_GFLOPs"] = round(self.fma_gflops, 2)
        return out


def describe(limits: dict[str, float]) -> str:
    """One thread count's limits (a Limits.as_dict(), from a result file) as text."""
    text = f"copy {limits['copy_GBs']:.1f} GB/s, GEMM {limits['gemm_GFLOPs']:.1f} GFLOP/s"
    if limits.get("fma_GFLOPs"):
        text += f", multiply-add peak {limits['fma_GFLOPs']:.1f} GFLOP/s"
    return text


def measure_fma_peak(repeats: int = 7) -> float | None:
    """Median GFLOP/s of lightdl's multiply-add loop on torch.get_num_threads() threads (None
    without the compiled extension)."""
    C = _backend._C
    if C is None:
        return None
    flop = C.cpu_fma_peak_run(_FMA_ITERS)[0]
    ms = Timer(device="cpu", warmup=2, repeats=repeats).run(
        {"fma": lambda: C.cpu_fma_peak_run(_FMA_ITERS)})["fma"]
    return flop / (ms * 1e-3) / 1e9


def measure_limits(device: str = "cpu", dtype: torch.dtype = torch.float32,
                   copy_mib: int = 64, gemm_n: int = 1024, repeats: int = 7) -> Limits:
    """Median copy bandwidth over a `copy_mib` MiB buffer (larger than the caches), median
    rate of an n x n x n matrix product and, on CPU in float32, the multiply-add peak."""
    es = torch.empty((), dtype=dtype).element_size()
    src = torch.randn(copy_mib * 2**20 // es, device=device).to(dtype)
    dst = torch.empty_like(src)
    a = torch.randn(gemm_n, gemm_n, device=device).to(dtype)
    b = torch.randn(gemm_n, gemm_n, device=device).to(dtype)
    c = torch.empty(gemm_n, gemm_n, device=device, dtype=dtype)
    timer = Timer(device=device, warmup=2, repeats=repeats)
    ms = timer.run({"copy": lambda: dst.copy_(src), "gemm": lambda: torch.mm(a, b, out=c)})
    copy_gbs = 2 * src.numel() * es / (ms["copy"] * 1e-3) / 1e9
    gemm = 2.0 * gemm_n**3 / (ms["gemm"] * 1e-3) / 1e9
    fma = measure_fma_peak(repeats) if device == "cpu" and dtype == torch.float32 else None
    return Limits(copy_gbs, gemm, fma)
