"""`lightdl bench ops --op lstm|gru`: one recurrent layer over a (T, B, I) sequence;
the cases and builders live in lightdl/bench/rnn.py (shared with benchmarks/bench_rnn.py)."""

from __future__ import annotations

from lightdl.bench import rnn
from lightdl.bench.spec import OpSpec, parse_dims

SYNTAX = "batch,seq,input,hidden (e.g. 64,100,1,32)"
# lightdl bench's implementation names -> lightdl/bench/rnn.py's
IMPL_MAP = {"native": "fused", "vendor": "torch", "eager": "loop", "compile": "compiled"}
PRESETS = {",".join(map(str, shape)): shape for shape in rnn.SHAPES.values()}


def _spec(kind: str) -> OpSpec:
    def make(shape, impl, mode, device, dtype, options):
        case = rnn.build(kind, tuple(shape), IMPL_MAP[impl], mode, device, dtype,
                         options.get("seed", 0))
        return case.run

    def work(shape, mode, dtype):
        return rnn.matmul_flop(kind, tuple(shape), mode), 0.0

    return OpSpec(
        name=kind, shape_syntax=SYNTAX, presets=PRESETS,
        parse=lambda s: parse_dims(s, 4, SYNTAX, sep=","), make=make, work=work,
        bound="compute", impls=("native", "eager", "compile", "vendor"),
        describe={"native": f"lightdl.nn.Fused{kind.upper()}",
                  "eager": f"Python loop of nn.{kind.upper()}Cell",
                  "compile": f"the loop with torch.compile'd nn.{kind.upper()}Cell steps",
                  "vendor": f"nn.{kind.upper()} (oneDNN on CPU, cuDNN on CUDA)"})


LSTM = _spec("lstm")
GRU = _spec("gru")
