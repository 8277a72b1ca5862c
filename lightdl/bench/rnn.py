"""LSTM/GRU benchmark cases: shape presets and implementation builders, shared by
benchmarks/bench_rnn.py (and later `lightdl bench ops`).

Implementations of one recurrent layer over a (T, B, I) sequence, all with the same weights:
- "fused":    lightdl.nn.FusedLSTM / FusedGRU (the time loop in C++);
- "fused-loop": the same modules with LIGHTDL_RNN_CUDA_LOOP=persistent (CUDA: the whole time
              loop in one kernel launch, csrc/cuda/rnn_loop.cu; on CPU the same as "fused");
- "torch":    torch.nn.LSTM / GRU (oneDNN on CPU, cuDNN on CUDA);
- "loop":     a Python loop over time of torch.nn.LSTMCell / GRUCell;
- "compiled": the same loop with the cell step compiled by torch.compile (the step is compiled
              once per case; compiling the whole loop would unroll T steps into one graph,
              which takes minutes to build at T = 500, so the loop itself stays in Python).

Modes: "fwd" (inference, under torch.no_grad) and "fwdbwd" (forward, then backward of a fixed
random output gradient into the weights).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from lightdl.nn import FusedGRU, FusedLSTM

# name -> (batch, seq_len, input_size, hidden_size): the shapes of the issue (RR-interval and
# stride-interval sequences: few input features, short to long sequences).
SHAPES: dict[str, tuple[int, int, int, int]] = {
    "b64 t100 i1 h32": (64, 100, 1, 32),
    "b64 t200 i8 h64": (64, 200, 8, 64),
    "b32 t500 i16 h128": (32, 500, 16, 128),
    "b128 t60 i32 h256": (128, 60, 32, 256),
}
KINDS = ("lstm", "gru")
IMPLS = ("fused", "torch", "loop", "compiled", "fused-loop", "fused-mkl")
MODES = ("fwd", "fwdbwd")

_LAYERS = {"lstm": (nn.LSTM, FusedLSTM, nn.LSTMCell), "gru": (nn.GRU, FusedGRU, nn.GRUCell)}


def matmul_flop(kind: str, shape: tuple[int, int, int, int], mode: str) -> float:
    """Floating-point operations of the layer's matrix products, G = 4H (LSTM) or 3H (GRU)
    gate columns: forward [x_t | h] (W_ih | W_hh)^T, 2 T B G (I + H); the backward adds
    dh = dG W_hh (every step: the ops return dh0) and the weight gradients [x | h]^T dG,
    2 T B G (I + 2H). The input needs no gradient in these cases, so dx = dG W_ih (which the
    fused ops skip then) is not counted. The
    gate math is left out: it is what the fused kernels are built to hide."""
    B, T, n_in, H = shape
    G = (4 if kind == "lstm" else 3) * H
    fwd = 2.0 * T * B * G * (n_in + H)
    return fwd if mode == "fwd" else fwd + 2.0 * T * B * G * (n_in + 2 * H)


@dataclass
class Case:
    """A ready-to-time implementation: `run()` does the work and returns what is compared
    (the output, and for fwdbwd the weight gradients)."""

    run: Callable[[], tuple[torch.Tensor, ...]]
    build_seconds: float = 0.0  # torch.compile's first call, for "compiled"


def _reference_layer(kind: str, shape, device, dtype, seed: int) -> nn.Module:
    _, _, n_in, H = shape
    torch.manual_seed(seed)
    return _LAYERS[kind][0](n_in, H, device=device, dtype=dtype)


def _inputs(shape, device, dtype, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    B, T, n_in, H = shape
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(T, B, n_in, generator=g).to(device=device, dtype=dtype)
    grad = torch.randn(T, B, H, generator=g).to(device=device, dtype=dtype)
    return x, grad


@contextlib.contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    """os.environ[name] = value for the block (the ops read their switches on every call)."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            del os.environ[name]
        else:
            os.environ[name] = before


# The fused layers under a switch: the CUDA one-launch loop, and on CPU MKL's packed GEMM per
# step in place of lightdl's (csrc/cpu/step_gemm.h), to measure what each gains.
_SWITCHES = {"fused-loop": ("LIGHTDL_RNN_CUDA_LOOP", "persistent"),
             "fused-mkl": ("LIGHTDL_RNN_CPU_GEMM", "mkl")}


def _cell_step(kind: str, cell: nn.Module) -> Callable:
    if kind == "lstm":
        return lambda xt, h, c: cell(xt, (h, c))
    return lambda xt, h, c: (cell(xt, h), c)


def _loop(step: Callable, x: torch.Tensor, H: int) -> torch.Tensor:
    h = x.new_zeros((x.shape[1], H))
    c = x.new_zeros((x.shape[1], H))
    ys = []
    for t in range(x.shape[0]):
        h, c = step(x[t], h, c)
        ys.append(h)
    return torch.stack(ys)


def build(kind: str, shape: tuple[int, int, int, int], impl: str, mode: str,
          device: str = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> Case:
    """One implementation of one case; every implementation gets the same weights and data."""
    ref_cls, fused_cls, cell_cls = _LAYERS[kind]
    _, _, n_in, H = shape
    ref = _reference_layer(kind, shape, device, dtype, seed)
    x, grad = _inputs(shape, device, dtype, seed)
    if impl in ("torch", "fused", *_SWITCHES):
        model = ref if impl == "torch" else fused_cls(n_in, H, device=device, dtype=dtype)
        model.load_state_dict(ref.state_dict())
        params = [model.weight_ih_l0, model.weight_hh_l0, model.bias_ih_l0, model.bias_hh_l0]

        def forward() -> torch.Tensor:
            return model(x)[0]
    elif impl in ("loop", "compiled"):
        cell = cell_cls(n_in, H, device=device, dtype=dtype)
        with torch.no_grad():
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(cell, name).copy_(getattr(ref, name + "_l0"))
        params = [cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh]
        step = _cell_step(kind, cell)
        if impl == "compiled":
            # A fresh compile per case: every case's step has the same code object, so reused
            # caches would pile up recompilations until dynamo's limit stops them.
            torch._dynamo.reset()
            step = torch.compile(step, dynamic=False, fullgraph=True)

        def forward() -> torch.Tensor:
            return _loop(step, x, H)
    else:
        raise ValueError(f"unknown impl {impl!r}; expected one of {IMPLS}")

    env = (lambda: _env(*_SWITCHES[impl])) if impl in _SWITCHES else contextlib.nullcontext
    if mode == "fwd":
        def run() -> tuple[torch.Tensor, ...]:
            with torch.no_grad(), env():
                return (forward(),)
    else:
        def run() -> tuple[torch.Tensor, ...]:
            for p in params:
                p.grad = None
            with env():
                y = forward()
                y.backward(grad)
            return (y.detach(), *[p.grad for p in params])

    build_seconds = 0.0
    if impl == "compiled":  # the first call compiles; time it and leave it out of the timings
        t0 = time.perf_counter()
        run()
        build_seconds = time.perf_counter() - t0
    return Case(run, build_seconds)


def same_result(got: tuple[torch.Tensor, ...], want: tuple[torch.Tensor, ...],
                rtol: float = 1e-4) -> bool:
    """Outputs and gradients within rtol of the reference, relative to each tensor's scale
    (gradients are sums over all steps and rows)."""
    for g, w in zip(got, want, strict=True):
        scale = max(1.0, w.abs().max().item())
        if not torch.allclose(g, w, rtol=rtol, atol=rtol * scale):
            return False
    return True
