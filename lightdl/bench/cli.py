"""`lightdl bench ops` and `lightdl bench train`: argument parsing and output."""

from __future__ import annotations

import argparse
import json
import os

import torch

OPS_EPILOG = """shape syntax (--shape, repeatable; default: the op's presets):
  activation, bias_act   N x C or N x C x L                 e.g. 256x4096, 16x64x1024
  act_pool               N x C x L (max pool, window 2)     e.g. 64x32x60
  bn_act_pool            N x C x L (training-mode batch norm, max pool 2)  e.g. 64x32x60
  linear                 rows x in_features x out_features  e.g. 256x1024x1024
  conv1d                 N,C_in,L,C_out,K[,stride,padding,dilation]  e.g. 64,1,1000,32,7,1,3,1
  lstm, gru              batch,seq,input,hidden             e.g. 64,100,1,32

implementations (--impl): native (lightdl's kernel), eager (the PyTorch reference),
compile (torch.compile of the reference), vendor (the vendor library's own fused path where
one exists: torch._addmm_activation for linear, nn.LSTM/nn.GRU (oneDNN/cuDNN) for lstm/gru).
Every implementation's result is checked against eager before it is timed; a wrong one is
reported as WRONG and not timed. CPU allocator: set MALLOC_MMAP_MAX_=0
MALLOC_TRIM_THRESHOLD_=100000000000 (or LD_PRELOAD jemalloc) so that large tensors are not
fresh mmaps on every call; the JSON records the allocator settings.
"""

DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
          "bfloat16": torch.bfloat16}


def _ops_parser(sub) -> None:
    from lightdl.bench.ops import specs

    p = sub.add_parser("ops", help="time kernels against eager, torch.compile and the vendor",
                       description="Time lightdl's kernels against PyTorch eager, torch.compile "
                       "and the vendor library, on your shapes, on this machine.",
                       epilog=OPS_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--op", action="append", choices=[*specs(), "all"], default=None,
                   help="op to benchmark (repeatable; default all)")
    p.add_argument("--shape", action="append", default=None, help="a shape (repeatable)")
    p.add_argument("--dtype", choices=list(DTYPES), default="float32")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--mode", action="append", choices=["fwd", "fwdbwd"], default=None,
                   help="fwd and/or fwdbwd (repeatable; default both)")
    p.add_argument("--impl", action="append", choices=["native", "eager", "compile", "vendor"],
                   default=None, help="implementations (repeatable; default all the op has)")
    p.add_argument("--act", default="relu", help="activation of activation/bias_act/act_pool/bn_act_pool/linear/conv1d")
    p.add_argument("--threads", type=int, action="append", default=None,
                   help="CPU thread counts, one table block each (repeatable; default current)")
    p.add_argument("--repeats", type=int, default=15, help="timed rounds (median reported)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    p.add_argument("--plot", metavar="PATH.png", help="write a speed-up chart")
    p.add_argument("--quiet", action="store_true", help="no progress line")


def _train_parser(sub) -> None:
    p = sub.add_parser("train", help="training speed of a config, fused vs torch.nn layers",
                       description="Train a config for a number of steps with the model fused "
                       "and unfused (same seed, same data), interleaved, and compare speed, "
                       "memory and the loss curves.")
    p.add_argument("--config", required=True, help="a run config (configs/*.yaml)")
    p.add_argument("--steps", type=int, default=60, help="training steps per run")
    p.add_argument("--warmup-steps", type=int, default=10, help="steps left out of the timing")
    p.add_argument("--repeats", type=int, default=3, help="runs per variant (median reported)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: current)")
    p.add_argument("--json", metavar="PATH")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("overrides", nargs="*", help="extra LightningCLI arguments, e.g. "
                   "--trainer.precision bf16-mixed (after --)")


def main(argv: list[str]) -> int:
    """`lightdl bench ops|train ...` (argv without `bench`); returns the exit status."""
    parser = argparse.ArgumentParser(prog="lightdl bench",
                                     description="Benchmarks: kernels (ops) and training (train).")
    sub = parser.add_subparsers(dest="what", required=True)
    _ops_parser(sub)
    _train_parser(sub)
    args = parser.parse_args(argv)
    if args.what == "ops":
        return _run_ops(args)
    return _run_train(args)


def _run_ops(args: argparse.Namespace) -> int:
    from lightdl.bench.ops import run_ops, specs
    from lightdl.bench.report import limits_line, plot, summary, table, write_json

    ops = args.op or ["all"]
    ops = list(specs()) if "all" in ops else ops
    if args.shape and len(ops) > 1:
        raise ValueError("--shape needs exactly one --op (shapes are op-specific)")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available")
    result = run_ops(ops, args.shape, device=args.device, dtype=DTYPES[args.dtype],
                     modes=args.mode or ["fwd", "fwdbwd"], impls=args.impl,
                     threads=args.threads, repeats=args.repeats, warmup=args.warmup,
                     options={"act": args.act}, progress=not args.quiet)
    result["summary"] = summary(result)
    print(limits_line(result))
    print(f"allocator: {result['machine']['allocator']}")
    print(table(result))
    if args.json:
        print(f"wrote {write_json(result, args.json)}")
    if args.plot:
        print(f"wrote {plot(result, args.plot)}")
    wrong = [r for r in result["rows"] if r["status"] == "WRONG"]
    if wrong:
        print(f"{len(wrong)} implementation(s) gave wrong results (see the check column)")
    return 1 if wrong else 0


def _run_train(args: argparse.Namespace) -> int:
    from lightdl.bench.train import bench_train, format_train

    if args.threads:
        os.environ["LIGHTDL_BENCH_THREADS"] = str(args.threads)
    result = bench_train(args.config, steps=args.steps, warmup_steps=args.warmup_steps,
                         repeats=args.repeats, threads=args.threads, overrides=args.overrides,
                         progress=not args.quiet)
    print(format_train(result))
    if args.json:
        from pathlib import Path

        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0 if result["loss_agree"] else 1
