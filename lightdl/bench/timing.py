"""Timing that holds up on a shared, noisy machine: warm-up, implementations interleaved
round by round (so drift hits all of them alike), medians, CUDA events on the GPU."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator

import torch


def median(values: list[float]) -> float:
    """The median of `values`."""
    return statistics.median(values)


class Timer:
    """Times several implementations of the same work, interleaved.

        timer = Timer(device="cpu", warmup=3, repeats=15)
        ms = timer.run({"native": f, "eager": g})  # name -> median milliseconds
    """

    def __init__(self, device: str = "cpu", warmup: int = 3, repeats: int = 15,
                 min_seconds: float = 0.0) -> None:
        self.device = torch.device(device)
        self.warmup = warmup
        self.repeats = repeats
        self.min_seconds = min_seconds

    def _once(self, fn: Callable[[], object]) -> float:
        if self.device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end)
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3

    def run(self, fns: dict[str, Callable[[], object]]) -> dict[str, float]:
        """Median milliseconds of each function, rounds interleaved."""
        for fn in fns.values():
            for _ in range(self.warmup):
                fn()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        times: dict[str, list[float]] = {name: [] for name in fns}
        order = list(fns)
        started = time.perf_counter()
        rounds = 0
        while rounds < self.repeats or time.perf_counter() - started < self.min_seconds:
            # Each round starts one implementation later: in a fixed order each one would
            # always follow the same neighbour and inherit its cache state (measured: oneDNN's
            # convolution timed 6-13% slower right after the GEMM path's 6 MB im2col than
            # when alternating with eager alone, and eager not).
            shift = rounds % len(order)
            for name in order[shift:] + order[:shift]:
                times[name].append(self._once(fns[name]))
            rounds += 1
        return {name: median(t) for name, t in times.items()}


def allocator_description() -> str:
    """Which malloc serves CPU tensors: large (>= 32 MiB) tensors from glibc's default malloc
    are fresh mmaps that page-fault on every call, which can dominate a memory-bound op."""
    preload = os.environ.get("LD_PRELOAD", "")
    for name in ("jemalloc", "tcmalloc", "mimalloc"):
        if name in preload:
            return f"{name} (LD_PRELOAD={preload})"
    tuned = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}
    return "glibc malloc (default settings)" + (f" with {tuned}" if tuned else "")


@contextlib.contextmanager
def full_float32() -> Iterator[None]:
    """Within the block, every CUDA implementation runs in full float32 (the previous settings
    come back on exit). cuDNN's default runs eager's float32 convolutions and RNNs in TF32
    (10-bit mantissa) on Ampere and later GPUs: another arithmetic than our kernels', and
    outside the float32 check tolerance. No effect on CPU work."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def machine_description(device: str = "cpu") -> dict[str, object]:
    """CPU, cores, GPU, torch and allocator of this machine, as recorded in every result."""
    info: dict[str, object] = {
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "allocator": allocator_description(),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
        info["tf32"] = bool(torch.backends.cudnn.allow_tf32 or torch.backends.cuda.matmul.allow_tf32)
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
