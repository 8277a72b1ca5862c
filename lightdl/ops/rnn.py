"""LSTM and GRU: whole layers (`lstm`, `gru`) and single cells (`lstm_cell`, `gru_cell`).

The native layer runs the whole time loop in C++ (csrc/lstm.cpp, csrc/gru.cpp): the input projection of all
steps is one GEMM, every step one recurrent GEMM plus one fused pointwise kernel, and the
backward runs the reverse loop in C++ and computes the weight gradients as single GEMMs over
all steps. The compiled forward ops return, besides their results, the gate activations (and
LSTM cell states) the backward op needs. A cell is a layer of one step.

Semantics are torch.nn's: LSTM gates (i, f, g, o), c' = f c + i g, h' = o tanh(c'); GRU gates
(r, z, n), n = tanh(W_in x + b_in + r (W_hn h + b_hn)), h' = (1 - z) n + z h. With `lengths`,
steps t >= lengths[b] leave sequence b's state unchanged and output zeros, as nn.LSTM/nn.GRU
on a PackedSequence.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from lightdl.ops import _backend
from lightdl.ops._autograd import call, register_autograd
from lightdl.ops._checks import check_like, check_tensor

Lengths = torch.Tensor | Sequence[int] | None


# ---------------------------------------------------------------------------------------------
# Pure-PyTorch references (the fallback backend and the test oracle).


def _step_mask(lengths: torch.Tensor | None, t: int, like: torch.Tensor) -> torch.Tensor | None:
    if lengths is None:
        return None
    return (lengths > t).to(like.device)[:, None]


def lstm_reference(
    x: torch.Tensor,
    h0: torch.Tensor,
    c0: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor | None = None,
    b_hh: torch.Tensor | None = None,
    lengths: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One LSTM layer as a Python loop over time; arguments as `lstm`."""
    xp = F.linear(x, w_ih, b_ih)
    h, c, ys = h0, c0, []
    for t in range(x.shape[0]):
        i, f, g, o = (xp[t] + F.linear(h, w_hh, b_hh)).chunk(4, 1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h_new = torch.sigmoid(o) * torch.tanh(c_new)
        m = _step_mask(lengths, t, x)
        if m is None:
            h, c, y = h_new, c_new, h_new
        else:
            h, c = torch.where(m, h_new, h), torch.where(m, c_new, c)
            y = torch.where(m, h_new, torch.zeros_like(h_new))
        ys.append(y)
    y = torch.stack(ys) if ys else x.new_empty((0, x.shape[1], h0.shape[1]))
    return y, h, c


def gru_reference(
    x: torch.Tensor,
    h0: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor | None = None,
    b_hh: torch.Tensor | None = None,
    lengths: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One GRU layer as a Python loop over time; arguments as `gru`."""
    xp = F.linear(x, w_ih, b_ih)
    h, ys = h0, []
    for t in range(x.shape[0]):
        xr, xz, xn = xp[t].chunk(3, 1)
        hr, hz, hn = F.linear(h, w_hh, b_hh).chunk(3, 1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        h_new = (1 - z) * n + z * h
        m = _step_mask(lengths, t, x)
        if m is None:
            h, y = h_new, h_new
        else:
            h, y = torch.where(m, h_new, h), torch.where(m, h_new, torch.zeros_like(h_new))
        ys.append(y)
    y = torch.stack(ys) if ys else x.new_empty((0, x.shape[1], h0.shape[1]))
    return y, h


def lstm_cell_reference(x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, w_ih: torch.Tensor,
                        w_hh: torch.Tensor, b_ih: torch.Tensor | None = None,
                        b_hh: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step (nn.LSTMCell's math) in PyTorch; x (B, I), h and c (B, H)."""
    _, h1, c1 = lstm_reference(x[None], h, c, w_ih, w_hh, b_ih, b_hh)
    return h1, c1


def gru_cell_reference(x: torch.Tensor, h: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor,
                       b_ih: torch.Tensor | None = None,
                       b_hh: torch.Tensor | None = None) -> torch.Tensor:
    """One GRU step (nn.GRUCell's math) in PyTorch; x (B, I), h (B, H)."""
    return gru_reference(x[None], h, w_ih, w_hh, b_ih, b_hh)[1]


# ---------------------------------------------------------------------------------------------
# Argument checks (the same contract the C++ ops enforce, with the argument named).


def _check_layer(op: str, gates: int, x, h0, c0, w_ih, w_hh, b_ih, b_hh, x_dims: int = 3) -> int:
    """Checks shapes, dtypes and devices; returns hidden_size."""
    check_tensor(x, "x", op)
    layout = "(seq_len, batch, input_size)" if x_dims == 3 else "(batch, input_size)"
    if x.dim() != x_dims:
        raise ValueError(f"{op}: `x` must have shape {layout}, got {tuple(x.shape)}")
    check_tensor(w_hh, "w_hh", op)
    if w_hh.dim() != 2 or w_hh.shape[0] != gates * w_hh.shape[1]:
        raise ValueError(
            f"{op}: `w_hh` must have shape ({gates}*hidden_size, hidden_size), got "
            f"{tuple(w_hh.shape)}"
        )
    H, B, n_in = w_hh.shape[1], x.shape[-2], x.shape[-1]
    device, dtype, G = x.device, x.dtype, gates * H
    for name, t, shape in (("w_hh", w_hh, (G, H)), ("w_ih", w_ih, (G, n_in)), ("h0", h0, (B, H)),
                           ("c0", c0, (B, H)), ("b_ih", b_ih, (G,)), ("b_hh", b_hh, (G,))):
        if t is None:
            continue
        # The usual call (x's dtype and device, the right shape) passes every check below; a
        # cell called once per step pays for these checks every step (~2 us of ~19 at batch 1).
        if isinstance(t, torch.Tensor) and t.dtype == dtype and t.shape == shape and (
                t.device == device):
            continue
        check_tensor(t, name, op)
        if tuple(t.shape) != shape:
            raise ValueError(f"{op}: `{name}` must have shape {shape}, got {tuple(t.shape)}")
        check_like(t, x, name, "x", op)
    return H


def _all_values(t: torch.Tensor) -> torch.Tensor:
    """The tensor whose values `t` shows: under torch.func transforms (vmap of grad, for
    per-sample gradients) `t` is a wrapper, one sample's view of the whole batch's tensor,
    and only that tensor's values can be read (`t.min()` would raise)."""
    functorch = torch._C._functorch
    while functorch.is_functorch_wrapped_tensor(t):
        t = functorch.get_unwrapped(t)
    return t


def _as_lengths(lengths: Lengths, op: str, batch: int, seq_len: int) -> torch.Tensor | None:
    if lengths is None:
        return None
    if not isinstance(lengths, torch.Tensor):
        lengths = torch.as_tensor(list(lengths), dtype=torch.int64)
    if lengths.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise TypeError(f"{op}: `lengths` must hold integers, got {lengths.dtype}")
    if lengths.dim() != 1 or lengths.shape[0] != batch:
        raise ValueError(f"{op}: `lengths` must have shape ({batch},), got {tuple(lengths.shape)}")
    lengths = lengths.to(device="cpu", dtype=torch.int64)
    # Not while torch.compile traces (the compiled op checks them). Under vmap, every
    # sample's lengths are checked here at once: left to the op, the error surfaced inside
    # vmap's per-sample fallback, where PyTorch can turn it into "SystemError: ... returned
    # NULL without setting an exception" (when the fallback's warning is pending).
    if not torch.compiler.is_compiling() and batch > 0:
        values = _all_values(lengths)
        lo, hi = int(values.min()), int(values.max())
        if lo < 0 or hi > seq_len:
            raise ValueError(
                f"{op}: `lengths` must lie in [0, seq_len={seq_len}], got values in [{lo}, {hi}]"
            )
    return lengths


# ---------------------------------------------------------------------------------------------
# Public ops.


def _needs_grad(*tensors: torch.Tensor | None) -> bool:
    """Whether autograd will need the op's saved intermediates (else the op skips them)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def lstm(
    x: torch.Tensor,
    h0: torch.Tensor | None,
    c0: torch.Tensor | None,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor | None = None,
    b_hh: torch.Tensor | None = None,
    lengths: Lengths = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One LSTM layer over a sequence (nn.LSTM's math, gate order i, f, g, o).

    Args:
        x: (T, B, I).
        h0, c0: (B, H) initial states, or None for zeros.
        w_ih: (4H, I); w_hh: (4H, H); b_ih, b_hh: (4H,) or None.
        lengths: None, or B sequence lengths in [0, T] (CPU int64 tensor or list; any order).
            Steps t >= lengths[b] keep row b's state and output zeros.
    Returns:
        y (T, B, H), h_T (B, H), c_T (B, H): h_T/c_T are each row's state after its last step.
    """
    op = "lstm"
    H = _check_layer(op, 4, x, h0, c0, w_ih, w_hh, b_ih, b_hh)
    if h0 is None:
        h0 = x.new_zeros((x.shape[1], H))
    if c0 is None:
        c0 = x.new_zeros((x.shape[1], H))
    lengths = _as_lengths(lengths, op, x.shape[1], x.shape[0])
    if _backend.use_native(x):
        save = _needs_grad(x, h0, c0, w_ih, w_hh, b_ih, b_hh)
        return tuple(call(torch.ops.lightdl.lstm, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths,
                          save)[:3])
    return lstm_reference(x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths)


def gru(
    x: torch.Tensor,
    h0: torch.Tensor | None,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor | None = None,
    b_hh: torch.Tensor | None = None,
    lengths: Lengths = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One GRU layer over a sequence (nn.GRU's math, gate order r, z, n).

    Args:
        x: (T, B, I); h0: (B, H) or None for zeros.
        w_ih: (3H, I); w_hh: (3H, H); b_ih, b_hh: (3H,) or None.
        lengths: as for `lstm`.
    Returns:
        y (T, B, H), h_T (B, H).
    """
    op = "gru"
    H = _check_layer(op, 3, x, h0, None, w_ih, w_hh, b_ih, b_hh)
    if h0 is None:
        h0 = x.new_zeros((x.shape[1], H))
    lengths = _as_lengths(lengths, op, x.shape[1], x.shape[0])
    if _backend.use_native(x):
        save = _needs_grad(x, h0, w_ih, w_hh, b_ih, b_hh)
        return tuple(call(torch.ops.lightdl.gru, x, h0, w_ih, w_hh, b_ih, b_hh, lengths,
                          save)[:2])
    return gru_reference(x, h0, w_ih, w_hh, b_ih, b_hh, lengths)


def _cell_input(op: str, x: torch.Tensor, states: tuple) -> tuple[bool, torch.Tensor, tuple]:
    """nn.LSTMCell/GRUCell accept an unbatched (I,) input with (H,) states."""
    check_tensor(x, "x", op)
    if x.dim() not in (1, 2):
        raise ValueError(f"{op}: `x` must have shape (batch, input_size) or (input_size,), got "
                         f"{tuple(x.shape)}")
    if x.dim() == 2:
        return False, x, states
    return True, x[None], tuple(None if s is None else s[None] for s in states)


def lstm_cell(
    x: torch.Tensor,
    h: torch.Tensor | None,
    c: torch.Tensor | None,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor | None = None,
    b_hh: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step, nn.LSTMCell's math: x (B, I) or (I,); h, c (B, H) / (H,) or None for
    zeros; weights as `lstm`. Returns (h', c')."""
    op = "lstm_cell"
    unbatched, x, (h, c) = _cell_input(op, x, (h, c))
    H = _check_layer(op, 4, x, h, c, w_ih, w_hh, b_ih, b_hh, x_dims=2)
    h = x.new_zeros((x.shape[0], H)) if h is None else h
    c = x.new_zeros((x.shape[0], H)) if c is None else c
    if _backend.use_native(x):
        save = _needs_grad(x, h, c, w_ih, w_hh, b_ih, b_hh)
        _, h1, c1, _, _ = call(torch.ops.lightdl.lstm, x[None], h, c, w_ih, w_hh, b_ih, b_hh,
                               None, save)
    else:
        h1, c1 = lstm_cell_reference(x, h, c, w_ih, w_hh, b_ih, b_hh)
    return (h1[0], c1[0]) if unbatched else (h1, c1)


def gru_cell(
    x: torch.Tensor,
    h: torch.Tensor | None,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor | None = None,
    b_hh: torch.Tensor | None = None,
) -> torch.Tensor:
    """One GRU step, nn.GRUCell's math: x (B, I) or (I,); h (B, H) / (H,) or None for zeros;
    weights as `gru`. Returns h'."""
    op = "gru_cell"
    unbatched, x, (h,) = _cell_input(op, x, (h,))
    H = _check_layer(op, 3, x, h, None, w_ih, w_hh, b_ih, b_hh, x_dims=2)
    h = x.new_zeros((x.shape[0], H)) if h is None else h
    if _backend.use_native(x):
        save = _needs_grad(x, h, w_ih, w_hh, b_ih, b_hh)
        h1 = call(torch.ops.lightdl.gru, x[None], h, w_ih, w_hh, b_ih, b_hh, None, save)[1]
    else:
        h1 = gru_cell_reference(x, h, w_ih, w_hh, b_ih, b_hh)
    return h1[0] if unbatched else h1


# ---------------------------------------------------------------------------------------------
# Fake kernels and autograd of the compiled ops.


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _check_saved(ctx, op: str) -> None:
    if not ctx.saved_intermediates:
        raise RuntimeError(f"lightdl::{op} was called with save=False, which keeps nothing for "
                           "the backward; call it with save=True to differentiate it")


def _register() -> None:
    lib = torch.ops.lightdl

    @torch.library.register_fake("lightdl::lstm")
    def _(x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths=None, save=True):
        T, B, H = x.shape[0], x.shape[1], w_hh.shape[1]
        ct = _compute_dtype(x.dtype)
        gates = x.new_empty((T, B, 4 * H) if save else (0,), dtype=ct)
        cs = x.new_empty((T, B, H) if save else (0,), dtype=ct)
        return x.new_empty((T, B, H)), x.new_empty((B, H)), x.new_empty((B, H)), gates, cs

    @torch.library.register_fake("lightdl::lstm_backward")
    def _(grad_y, grad_h, grad_c, x, h0, c0, w_ih, w_hh, y, gates, cs, lengths=None,
          x_grad=True):
        dx = torch.empty_like(x) if x_grad else x.new_empty((0,))
        return (dx, torch.empty_like(h0), torch.empty_like(c0), torch.empty_like(w_ih),
                torch.empty_like(w_hh), w_hh.new_empty((w_hh.shape[0],)))

    @torch.library.register_fake("lightdl::gru")
    def _(x, h0, w_ih, w_hh, b_ih, b_hh, lengths=None, save=True):
        T, B, H = x.shape[0], x.shape[1], w_hh.shape[1]
        saved = x.new_empty((T, B, 4 * H) if save else (0,), dtype=_compute_dtype(x.dtype))
        return x.new_empty((T, B, H)), x.new_empty((B, H)), saved

    @torch.library.register_fake("lightdl::gru_backward")
    def _(grad_y, grad_h, x, h0, w_ih, w_hh, y, saved, lengths=None, x_grad=True):
        G = w_hh.shape[0]
        dx = torch.empty_like(x) if x_grad else x.new_empty((0,))
        return (dx, torch.empty_like(h0), torch.empty_like(w_ih), torch.empty_like(w_hh),
                w_hh.new_empty((G,)), w_hh.new_empty((G,)))

    def _lstm_setup(ctx, inputs, output):
        x, h0, c0, w_ih, w_hh, b_ih, b_hh = inputs[:7]
        lengths = inputs[7] if len(inputs) > 7 else None
        ctx.saved_intermediates = inputs[8] if len(inputs) > 8 else True
        y, _, _, gates, cs = output
        ctx.save_for_backward(x, h0, c0, w_ih, w_hh, y, gates, cs, lengths)
        ctx.has_bias = (b_ih is not None, b_hh is not None)
        # Unused outputs get None rather than materialised zeros (the gates alone are T*B*4H).
        ctx.set_materialize_grads(False)

    def _lstm_backward(ctx, grad_y, grad_h, grad_c, _grad_gates, _grad_cs):
        # The intermediates (gates, cs) are for this backward only; gradients flowing into
        # them (nobody outside this file sees them) are not propagated.
        _check_saved(ctx, "lstm")
        x, h0, c0, w_ih, w_hh, y, gates, cs, lengths = ctx.saved_tensors
        # A network's input (the first layer's x) needs no gradient: dx is then not computed.
        x_grad = ctx.needs_input_grad[0]
        dx, dh0, dc0, dw_ih, dw_hh, db = lib.lstm_backward(
            grad_y, grad_h, grad_c, x, h0, c0, w_ih, w_hh, y, gates, cs, lengths, x_grad)
        has_ih, has_hh = ctx.has_bias
        return (dx if x_grad else None, dh0, dc0, dw_ih, dw_hh, db if has_ih else None,
                db if has_hh else None, None)

    register_autograd("lightdl::lstm", _lstm_backward, setup_context=_lstm_setup)

    def _gru_setup(ctx, inputs, output):
        x, h0, w_ih, w_hh, b_ih, b_hh = inputs[:6]
        lengths = inputs[6] if len(inputs) > 6 else None
        ctx.saved_intermediates = inputs[7] if len(inputs) > 7 else True
        y, _, saved = output
        ctx.save_for_backward(x, h0, w_ih, w_hh, y, saved, lengths)
        ctx.has_bias = (b_ih is not None, b_hh is not None)
        ctx.set_materialize_grads(False)

    def _gru_backward(ctx, grad_y, grad_h, _grad_saved):
        _check_saved(ctx, "gru")
        x, h0, w_ih, w_hh, y, saved, lengths = ctx.saved_tensors
        x_grad = ctx.needs_input_grad[0]
        dx, dh0, dw_ih, dw_hh, db_ih, db_hh = lib.gru_backward(
            grad_y, grad_h, x, h0, w_ih, w_hh, y, saved, lengths, x_grad)
        has_ih, has_hh = ctx.has_bias
        return (dx if x_grad else None, dh0, dw_ih, dw_hh, db_ih if has_ih else None,
                db_hh if has_hh else None, None)

    register_autograd("lightdl::gru", _gru_backward, setup_context=_gru_setup)

    # Autocast as torch.nn's RNNs: on CPU nn.LSTM runs in the lower precision (oneDNN's bf16
    # RNN) and nn.GRU stays float32; on CUDA both run in float16 (cuDNN). The casts apply to
    # floating inputs only (lengths stays int64).
    torch.library.register_autocast("lightdl::lstm", "cpu", torch.bfloat16)
    torch.library.register_autocast("lightdl::lstm", "cuda", torch.float16)
    torch.library.register_autocast("lightdl::gru", "cuda", torch.float16)


if _backend._C is not None:
    _register()
