"""The machine's limits the benchmarks are held against: copy bandwidth, GEMM rate and, on
CPU, the multiply-add peak, measured on the same device, dtype and thread count as the ops."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from lightdl.bench.timing import Timer
from lightdl.ops import _backend

# Iterations of the multiply-add loop per thread and call: ~1 ms at AVX-512's rate, ~5 ms
# on the SSE2 baseline.
_FMA_ITERS = 500_000
# Buffer sizes (MiB) of the copy measurements: within a core's L2, within an L3, and beyond
# every cache (the last is the headline figure, copy_gbs).
COPY_MIB = (0.25, 4.0, 64.0)


@dataclass
class Limits:
    """What this machine can do, measured: the bounds the benchmark tables compare with."""
    copy_gbs: float  # GB/s of dst.copy_(src) (read + write counted), buffers beyond the caches
    gemm_gflops: float  # GFLOP/s of a square torch.mm
    # CPU float32: GFLOP/s of lightdl's register-only multiply-add loop in the vectors its
    # kernels use (csrc/cpu/fma_peak.cpp) on every thread; None where not measured.
    fma_gflops: float | None = None
    # copy GB/s by buffer size in MiB (COPY_MIB); empty where only copy_gbs was measured
    copy_by_mib: dict[float, float] = field(default_factory=dict)

    def copy_bound(self, nbytes: float) -> float:
        """The memory-bound limit of an op that moves `nbytes` (read + write): the copy whose
        traffic is closest to it (log scale). An op whose data stays in cache is held against
        a copy that stays in cache too: against the copy beyond the caches, eager activations
        read 200% of the limit on an AMD EPYC."""
        if not self.copy_by_mib or nbytes <= 0:
            return self.copy_gbs
        mib = min(self.copy_by_mib, key=lambda m: abs(math.log(2 * m * 2**20 / nbytes)))
        return self.copy_by_mib[mib]

    @property
    def compute_gflops(self) -> float:
        """The compute bound of the % limit column: the multiply-add peak where measured. The
        GEMM rate is not a bound on every CPU: MKL runs AVX2 kernels on AMD CPUs with AVX-512."""
        return max(self.gemm_gflops, self.fma_gflops or 0.0)

    def as_dict(self) -> dict[str, float]:
        out = {"copy_GBs": round(self.copy_gbs, 2), "gemm_GFLOPs": round(self.gemm_gflops, 2)}
        if self.fma_gflops is not None:
            out["fma_GFLOPs"] = round(self.fma_gflops, 2)
        if self.copy_by_mib:
            out["copy_GBs_by_MiB"] = {f"{m:g}": round(v, 2) for m, v in self.copy_by_mib.items()}
        return out


def describe(limits: dict[str, float]) -> str:
    """One thread count's limits (a Limits.as_dict(), from a result file) as text."""
    text = f"copy {limits['copy_GBs']:.1f} GB/s"
    if limits.get("copy_GBs_by_MiB"):
        sizes = limits["copy_GBs_by_MiB"]
        text += (f" ({' / '.join(f'{v:.0f}' for v in sizes.values())} GB/s with "
                 f"{' / '.join(sizes)} MiB buffers)")
    text += f", GEMM {limits['gemm_GFLOPs']:.1f} GFLOP/s"
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
                   copy_mib: tuple[float, ...] = COPY_MIB, gemm_n: int = 1024,
                   repeats: int = 7) -> Limits:
    """Median copy bandwidth over buffers of each size in `copy_mib` (each timed call copies
    ~64 MiB in all, so the small buffers are copied many times, staying in cache), median
    rate of an n x n x n matrix product and, on CPU in float32, the multiply-add peak."""
    es = torch.empty((), dtype=dtype).element_size()
    fns, moved = {}, {}
    for mib in copy_mib:
        src = torch.randn(int(mib * 2**20) // es, device=device).to(dtype)
        dst = torch.empty_like(src)
        times = max(1, round(max(copy_mib) / mib))

        def copy(src=src, dst=dst, times=times) -> None:
            for _ in range(times):
                dst.copy_(src)
        fns[mib] = copy
        moved[mib] = 2 * src.numel() * es * times
    a = torch.randn(gemm_n, gemm_n, device=device).to(dtype)
    b = torch.randn(gemm_n, gemm_n, device=device).to(dtype)
    c = torch.empty(gemm_n, gemm_n, device=device, dtype=dtype)
    timer = Timer(device=device, warmup=2, repeats=repeats)
    ms = timer.run({**{f"copy {m}": f for m, f in fns.items()},
                    "gemm": lambda: torch.mm(a, b, out=c)})
    by_mib = {m: moved[m] / (ms[f"copy {m}"] * 1e-3) / 1e9 for m in copy_mib}
    gemm = 2.0 * gemm_n**3 / (ms["gemm"] * 1e-3) / 1e9
    fma = measure_fma_peak(repeats) if device == "cpu" and dtype == torch.float32 else None
    return Limits(by_mib[max(copy_mib)], gemm, fma, by_mib)
