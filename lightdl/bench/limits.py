"""The machine's limits the benchmarks are held against: copy bandwidth and GEMM rate,
measured on the same device, dtype and thread count as the ops."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lightdl.bench.timing import Timer


@dataclass
class Limits:
    copy_gbs: float  # GB/s of dst.copy_(src) (read + write counted)
    gemm_gflops: float  # GFLOP/s of a square torch.mm

    def as_dict(self) -> dict[str, float]:
        return {"copy_GBs": round(self.copy_gbs, 2), "gemm_GFLOPs": round(self.gemm_gflops, 2)}


def measure_limits(device: str = "cpu", dtype: torch.dtype = torch.float32,
                   copy_mib: int = 64, gemm_n: int = 1024, repeats: int = 7) -> Limits:
    """Median copy bandwidth over a `copy_mib` MiB buffer (larger than the caches) and
    median rate of an n x n x n matrix product."""
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
    return Limits(copy_gbs, gemm)
