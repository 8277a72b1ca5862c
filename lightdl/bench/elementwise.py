"""Benchmark specs of the elementwise ops (activation, bias_act, act_pool, bn_act_pool) and
fused_linear."""

from __future__ import annotations

import math

import torch

from lightdl.bench.spec import OpSpec, parse_dims, randn, seeded
from lightdl.ops import (
    act_pool1d,
    act_pool1d_reference,
    activation,
    activation_reference,
    batch_norm_act_pool1d,
    batch_norm_act_pool1d_reference,
    bias_act,
    bias_act_reference,
    fused_linear,
    fused_linear_reference,
)

ELEMENTWISE_PRESETS = {
    "64x1024": (64, 1024),
    "256x4096": (256, 4096),
    "16x64x1024": (16, 64, 1024),
    "4096x4096": (4096, 4096),
    "64x256x1024": (64, 256, 1024),
}
POOL_PRESETS = {  # N x C x L; af_cnn's blocks first
    "64x32x60": (64, 32, 60),
    "64x64x30": (64, 64, 30),
    "64x64x15": (64, 64, 15),  # the third block: a length the pooling window leaves a tail of
    "64x64x1000": (64, 64, 1000),
    "16x128x4096": (16, 128, 4096),
}
LINEAR_PRESETS = {  # rows x in_features x out_features
    "64x64x64": (64, 64, 64),
    "256x1024x1024": (256, 1024, 1024),
    "4096x512x512": (4096, 512, 512),
    "64x4096x4096": (64, 4096, 4096),
}


def _fwd_or_fwdbwd(fn, inputs: list[torch.Tensor], mode: str, grad_shape, gen, device, dtype):
    if mode == "fwd":
        def run():
            with torch.no_grad():
                return (fn(*inputs),)
        return run
    leaves = [t.clone().requires_grad_() for t in inputs]
    g = randn(grad_shape, gen, device, dtype)

    def run():
        for t in leaves:
            t.grad = None
        fn(*leaves).backward(g)
        return tuple(t.grad for t in leaves)
    return run


def _impl(native, reference, impl: str):
    if impl == "native":
        return native
    if impl == "eager":
        return reference
    if impl == "compile":
        return torch.compile(reference, dynamic=False)
    raise ValueError(f"impl {impl!r} is not available for this op")


def _make_activation(shape, impl, mode, device, dtype, options):
    act = options.get("act", "relu")
    gen = seeded(options.get("seed", 0))
    x = randn(shape, gen, device, dtype)
    fn = _impl(lambda t: activation(t, act), lambda t: activation_reference(t, act), impl)
    return _fwd_or_fwdbwd(fn, [x], mode, shape, gen, device, dtype)


def _make_bias_act(shape, impl, mode, device, dtype, options):
    act = options.get("act", "relu")
    gen = seeded(options.get("seed", 0))
    x, b = randn(shape, gen, device, dtype), randn(shape[1], gen, device, dtype)
    fn = _impl(lambda t, c: bias_act(t, c, act), lambda t, c: bias_act_reference(t, c, act), impl)
    return _fwd_or_fwdbwd(fn, [x, b], mode, shape, gen, device, dtype)


def _make_act_pool(shape, impl, mode, device, dtype, options):
    act = options.get("act", "relu")
    gen = seeded(options.get("seed", 0))
    x = randn(shape, gen, device, dtype)
    fn = _impl(lambda t: act_pool1d(t, act, "max", 2),
               lambda t: act_pool1d_reference(t, act, "max", 2), impl)
    return _fwd_or_fwdbwd(fn, [x], mode, (*shape[:2], shape[2] // 2), gen, device, dtype)


def _make_bn_act_pool(shape, impl, mode, device, dtype, options):
    act = options.get("act", "relu")
    gen = seeded(options.get("seed", 0))
    c = shape[1]
    x = randn(shape, gen, device, dtype)
    w = randn(c, gen, device, dtype).abs() + 0.5
    b = randn(c, gen, device, dtype)
    # Training mode, as in a training step: batch statistics, running ones updated.
    rm, rv = torch.zeros(c, device=device, dtype=dtype), torch.ones(c, device=device, dtype=dtype)
    fn = _impl(lambda t, w_, b_: batch_norm_act_pool1d(t, rm, rv, w_, b_, True, act=act),
               lambda t, w_, b_: batch_norm_act_pool1d_reference(t, rm, rv, w_, b_, True,
                                                                 act=act), impl)
    return _fwd_or_fwdbwd(fn, [x, w, b], mode, (*shape[:2], shape[2] // 2), gen, device, dtype)


def _act_pool_work(shape, mode, dtype):
    n, es = math.prod(shape), torch.empty((), dtype=dtype).element_size()
    # forward: read x, write y (n / 2); backward: read grad (n / 2) and x, write grad_x
    return 0.0, float(n * es * (1.5 if mode == "fwd" else 4.0))


def _elementwise_work(shape, mode, dtype):
    n, es = math.prod(shape), torch.empty((), dtype=dtype).element_size()
    # forward: read x, write y; backward: read grad and x, write grad_x
    return 0.0, float(n * es * (2 if mode == "fwd" else 5))


# Activations torch fuses into the vendor GEMM (torch._addmm_activation: cuBLASLt epilogue on
# CUDA, addmm + in-place activation on the CPU).
_VENDOR_ACTS = {"relu": False, "gelu": True}


def _make_linear(shape, impl, mode, device, dtype, options):
    act = options.get("act", "relu")
    gen = seeded(options.get("seed", 0))
    m, k, n = shape
    x, w, b = randn((m, k), gen, device, dtype), randn((n, k), gen, device, dtype) / k**0.5, \
        randn(n, gen, device, dtype)
    if impl == "vendor":
        if act not in _VENDOR_ACTS:
            raise NotImplementedError(f"vendor linear fuses relu and gelu only, not {act}")
        if mode != "fwd":
            raise NotImplementedError("torch._addmm_activation has no backward")
        use_gelu = _VENDOR_ACTS[act]
        fn = lambda x_, w_, b_: torch._addmm_activation(b_, x_, w_.t(), use_gelu=use_gelu)  # noqa: E731
    else:
        fn = _impl(lambda x_, w_, b_: fused_linear(x_, w_, b_, act),
                   lambda x_, w_, b_: fused_linear_reference(x_, w_, b_, act), impl)
    return _fwd_or_fwdbwd(fn, [x, w, b], mode, (m, n), gen, device, dtype)


def _linear_work(shape, mode, dtype):
    m, k, n = shape
    flop = 2.0 * m * k * n
    return (flop if mode == "fwd" else 3 * flop), 0.0


_ELEMENTWISE_SYNTAX = "dims joined by x, 2 or 3 of them: N x C or N x C x L (e.g. 256x4096)"

ACTIVATION = OpSpec(
    name="activation", shape_syntax=_ELEMENTWISE_SYNTAX, presets=ELEMENTWISE_PRESETS,
    parse=lambda s: parse_dims(s, (2, 3), _ELEMENTWISE_SYNTAX), make=_make_activation,
    work=_elementwise_work, bound="memory", impls=("native", "eager", "compile"),
    describe={"native": "lightdl.ops.activation", "eager": "torch activation",
              "compile": "torch.compile(torch activation)"})
BIAS_ACT = OpSpec(
    name="bias_act", shape_syntax=_ELEMENTWISE_SYNTAX, presets=ELEMENTWISE_PRESETS,
    parse=lambda s: parse_dims(s, (2, 3), _ELEMENTWISE_SYNTAX), make=_make_bias_act,
    work=_elementwise_work, bound="memory", impls=("native", "eager", "compile"),
    describe={"native": "lightdl.ops.bias_act", "eager": "act(x + bias)",
              "compile": "torch.compile(act(x + bias))"})
_POOL_SYNTAX = "N x C x L (e.g. 64x32x60); max pooling, window and stride 2"
ACT_POOL = OpSpec(
    name="act_pool", shape_syntax=_POOL_SYNTAX, presets=POOL_PRESETS,
    parse=lambda s: parse_dims(s, 3, _POOL_SYNTAX), make=_make_act_pool,
    work=_act_pool_work, bound="memory", impls=("native", "eager", "compile"),
    describe={"native": "lightdl.ops.act_pool1d", "eager": "F.max_pool1d(act(x), 2)",
              "compile": "torch.compile(F.max_pool1d(act(x), 2))"})
_BN_SYNTAX = "N x C x L (e.g. 64x32x60); training-mode batch norm, max pooling, window 2"
BN_ACT_POOL = OpSpec(
    name="bn_act_pool", shape_syntax=_BN_SYNTAX, presets=POOL_PRESETS,
    parse=lambda s: parse_dims(s, 3, _BN_SYNTAX), make=_make_bn_act_pool,
    work=_act_pool_work, bound="memory", impls=("native", "eager", "compile"),
    describe={"native": "lightdl.ops.batch_norm_act_pool1d",
              "eager": "F.max_pool1d(act(F.batch_norm(x, training=True)), 2)",
              "compile": "torch.compile(the eager expression)"})
_LINEAR_SYNTAX = "rows x in_features x out_features (e.g. 256x1024x1024)"
LINEAR = OpSpec(
    name="linear", shape_syntax=_LINEAR_SYNTAX, presets=LINEAR_PRESETS,
    parse=lambda s: parse_dims(s, 3, _LINEAR_SYNTAX), make=_make_linear, work=_linear_work,
    bound="compute", impls=("native", "eager", "compile", "vendor"),
    describe={"native": "lightdl.ops.fused_linear", "eager": "act(F.linear(x, w, b))",
              "compile": "torch.compile(act(F.linear))",
              "vendor": "torch._addmm_activation (relu/gelu in the BLAS epilogue)"})

