"""The CUDA kernels of the one-launch LSTM / GRU loops (csrc/cuda/rnn_loop_kernels.cuh), run
on the CPU by tests/emu/rnn_loop_emu.cpp (one std::thread per CUDA thread, a barrier for
__syncthreads), against the CPU ops on the same float64 inputs: the gates, states and outputs
of the forward, the gate gradients of the backward (as the weight, bias and input gradients
they make), for every rows-per-block variant, partial last blocks, variable lengths, with and
without dL/dy. This checks the kernels' indexing and cell math on every run; the launch rules
and the speed need a GPU (tests/test_rnn_ops.py, test_cuda_one_launch_loop_*)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from lightdl.ops._backend import _C

pytestmark = pytest.mark.skipif(_C is None, reason="compiled extension not built")

ROOT = Path(__file__).resolve().parent.parent
D = torch.float64
NONE = torch.empty(0, dtype=D)


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    from torch.utils.cpp_extension import load

    return load("lightdl_rnn_loop_emu", [str(ROOT / "tests" / "emu" / "rnn_loop_emu.cpp")],
                extra_include_paths=[str(ROOT / "csrc")], extra_cflags=["-O1", "-std=c++20"],
                build_directory=str(tmp_path_factory.mktemp("rnn_loop_emu")), verbose=False)


def _case(kind: str, T: int, B: int, n_in: int, H: int, lengths: bool, grad_y: bool):
    G = 4 if kind == "lstm" else 3
    w_ih, w_hh = torch.randn(G * H, n_in, dtype=D) * 0.3, torch.randn(G * H, H, dtype=D) * 0.3
    b_ih, b_hh = torch.randn(G * H, dtype=D), torch.randn(G * H, dtype=D)
    x, h0, c0 = (torch.randn(T, B, n_in, dtype=D), torch.randn(B, H, dtype=D),
                 torch.randn(B, H, dtype=D))
    lens = torch.randint(0, T + 1, (B,)) if lengths else None
    gy = torch.randn(T, B, H, dtype=D) if grad_y else None
    return dict(x=x, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh, h0=h0, c0=c0, lens=lens, gy=gy,
                gh=torch.randn(B, H, dtype=D), gc=torch.randn(B, H, dtype=D))


def _close(got, want, names):
    for g, w, n in zip(got, want, names, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-10, msg=lambda m, n=n: f"{n}: {m}")


def _grads(dg, dg_hh, x, w_ih, hprev):
    """dx, dW_ih, dW_hh from the gate gradients (input side dg, hidden side dg_hh)."""
    return (torch.einsum("tbg,gi->tbi", dg, w_ih), torch.einsum("tbg,tbi->gi", dg, x),
            torch.einsum("tbg,tbh->gh", dg_hh, hprev))


def _check_lstm(emu, R, c):
    ops = torch.ops.lightdl
    x, T, B = c["x"], c["x"].shape[0], c["x"].shape[1]
    H = c["h0"].shape[1]
    lens = c["lens"] if c["lens"] is not None else torch.empty(0, dtype=torch.int64)
    want = ops.lstm(x, c["h0"], c["c0"], c["w_ih"], c["w_hh"], c["b_ih"], c["b_hh"], c["lens"],
                    True)
    gates = torch.einsum("tbi,gi->tbg", x, c["w_ih"]).contiguous()  # x W_ih^T, no bias
    h, cc, y, cs = c["h0"].clone(), c["c0"].clone(), torch.empty(T, B, H, dtype=D), \
        torch.empty(T, B, H, dtype=D)
    emu.fwd(True, R, gates, c["w_hh"].t().contiguous(), c["b_ih"] + c["b_hh"], NONE, h, cc, y,
            cs, lens)
    _close((y, h, cc, gates, cs), want, ("y", "h", "c", "gates", "cs"))
    want_b = ops.lstm_backward(c["gy"], c["gh"], c["gc"], x, c["h0"], c["c0"], c["w_ih"],
                               c["w_hh"], want[0], want[3], want[4], c["lens"], True)
    dh, dc, dg = c["gh"].clone(), c["gc"].clone(), torch.empty(T, B, 4 * H, dtype=D)
    emu.bwd(True, R, T, want[3], want[4], c["c0"], NONE, NONE,
            c["gy"] if c["gy"] is not None else NONE, c["w_hh"], dh, dc, dg, NONE, lens)
    hprev = torch.cat([c["h0"][None], want[0][:-1]])
    dx, dw_ih, dw_hh = _grads(dg, dg, x, c["w_ih"], hprev)
    _close((dx, dh, dc, dw_ih, dw_hh, dg.sum((0, 1))), want_b,
           ("dx", "dh0", "dc0", "dW_ih", "dW_hh", "db"))


def _check_gru(emu, R, c):
    ops = torch.ops.lightdl
    x, T, B = c["x"], c["x"].shape[0], c["x"].shape[1]
    H = c["h0"].shape[1]
    lens = c["lens"] if c["lens"] is not None else torch.empty(0, dtype=torch.int64)
    want = ops.gru(x, c["h0"], c["w_ih"], c["w_hh"], c["b_ih"], c["b_hh"], c["lens"], True)
    xg = torch.einsum("tbi,gi->tbg", x, c["w_ih"]).contiguous()
    h, y, saved = c["h0"].clone(), torch.empty(T, B, H, dtype=D), \
        torch.empty(T, B, 4 * H, dtype=D)
    emu.fwd(False, R, xg, c["w_hh"].t().contiguous(), c["b_ih"], c["b_hh"], h, NONE, y, saved,
            lens)
    _close((y, h, saved), want, ("y", "h", "saved"))
    want_b = ops.gru_backward(c["gy"], c["gh"], x, c["h0"], c["w_ih"], c["w_hh"], want[0],
                              want[2], c["lens"], True)
    dh = c["gh"].clone()
    dxg, dhg = torch.empty(T, B, 3 * H, dtype=D), torch.empty(T, B, 3 * H, dtype=D)
    emu.bwd(False, R, T, want[2], NONE, NONE, want[0], c["h0"],
            c["gy"] if c["gy"] is not None else NONE, c["w_hh"], dh, NONE, dxg, dhg, lens)
    hprev = torch.cat([c["h0"][None], want[0][:-1]])
    dx, dw_ih, dw_hh = _grads(dxg, dhg, x, c["w_ih"], hprev)
    _close((dx, dh, dw_ih, dw_hh, dxg.sum((0, 1)), dhg.sum((0, 1))), want_b,
           ("dx", "dh0", "dW_ih", "dW_hh", "db_ih", "db_hh"))


@pytest.mark.parametrize("R", [1, 2, 4, 8])
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_emulated_loop_kernels_match_cpu_ops(emu, kind, R):
    # B = 1, B < R, B a multiple of R and not; hidden sizes across warp boundaries (threads
    # past H idle but still meet every barrier).
    shapes = [(1, 1, 1, 1), (random.randint(2, 9), random.randint(2, 11), random.randint(1, 4),
                             random.randint(2, 40)), (3, 2 * R + 1, 2, 33), (4, R, 3, 64)]
    for i, (T, B, n_in, H) in enumerate(shapes):
        for lengths in (False, True):
            c = _case(kind, T, B, n_in, H, lengths, grad_y=i % 2 == 0 or lengths)
            (_check_lstm if kind == "lstm" else _check_gru)(emu, R, c)
