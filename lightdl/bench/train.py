"""`lightdl bench train`: end-to-end training speed of a config with the model's fused
layers against the same model built from torch.nn layers (same seed, same data, same
weights), each run in a fresh process (clean peak memory), variants interleaved."""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

from lightdl.bench.timing import full_float32

VARIANTS = ("fused", "unfused")


class _StepClock(L.Callback):
    """Wall time, batch size and loss of every training step."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.sizes: list[int] = []
        self.losses: list[float] = []
        self._t0 = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.times.append(time.perf_counter() - self._t0)
        self.sizes.append(len(batch[-1]))
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.losses.append(float(loss) if loss is not None else float("nan"))


def run_once(config: str, fused: bool, steps: int, overrides: list[str], workdir: str) -> dict:
    """One training run in this process; returns per-step times, sizes and losses."""
    from lightdl.train_cli import LightdlCLI

    args = ["--config", config, *overrides,
            "--model.init_args.model.init_args.fused", "true" if fused else "false",
            "--trainer.max_steps", str(steps), "--trainer.max_epochs", "100000",
            # Validation stays (2 batches, untimed): ReduceLROnPlateau and friends need it.
            "--trainer.limit_val_batches", "2", "--trainer.num_sanity_val_steps", "0",
            "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
            "--trainer.enable_model_summary", "false", "--trainer.default_root_dir", workdir,
            "--checkpoint.save_last", "false", "--checkpoint.save_top_k", "0"]
    cli = LightdlCLI(args=args, run=False)
    clock = _StepClock()
    cli.trainer.callbacks.append(clock)
    # Both variants in the same arithmetic: with cuDNN's default TF32 the unfused model's
    # convolutions and LSTMs would round differently from our float32 kernels (on an H100 the
    # af_cnn loss curves then differed by 2e-3 over the first steps).
    with full_float32():
        cli.trainer.fit(cli.model, cli.datamodule)
    num_batches = cli.trainer.num_training_batches
    peak = (torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None)
    import resource

    return {"times": clock.times, "sizes": clock.sizes, "losses": clock.losses,
            "batches_per_epoch": num_batches, "peak_rss_mib": resource.getrusage(
                resource.RUSAGE_SELF).ru_maxrss / 1024, "peak_cuda_mib":
            peak / 2**20 if peak is not None else None,
            "model": type(cli.model.model).__name__ if hasattr(cli.model, "model") else "?"}


def bench_train(config: str, steps: int = 60, warmup_steps: int = 10, repeats: int = 3,
                threads: int | None = None, overrides: list[str] | None = None,
                progress: bool = True) -> dict:
    """Fused vs unfused training of `config` for `steps` steps, `repeats` runs each."""
    if not Path(config).is_file():
        raise FileNotFoundError(f"--config {config!r} does not exist")
    if steps <= warmup_steps:
        raise ValueError(f"--steps ({steps}) must be larger than --warmup-steps ({warmup_steps})")
    runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    total, done = repeats * len(VARIANTS), 0
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            order = VARIANTS if r % 2 == 0 else VARIANTS[::-1]  # interleaved, alternating
            for v in order:
                done += 1
                if progress:
                    sys.stderr.write(f"\r\033[K[{done}/{total}] {Path(config).stem}: {v} run "
                                     f"{r + 1}/{repeats}")
                    sys.stderr.flush()
                out = Path(tmp) / f"{v}{r}.json"
                cmd = [sys.executable, "-m", "lightdl.bench.train", config, v, str(steps), tmp,
                       str(out), str(threads or 0), *(overrides or [])]
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
                if proc.returncode != 0:
                    tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
                    raise RuntimeError(f"the {v} training run failed:\n{tail}")
                runs[v].append(json.loads(out.read_text()))
    if progress:
        sys.stderr.write("\r\033[K")
    return summarise(config, runs, warmup_steps, threads)


def summarise(config: str, runs: dict[str, list[dict]], warmup_steps: int,
              threads: int | None) -> dict:
    """The result of `bench_train` from the runs of each variant: medians of samples/s,
    time per step and epoch, peak memory, and whether the loss curves agree."""
    rows = {}
    for v, rs in runs.items():
        per_run = []
        for run in rs:
            t = sum(run["times"][warmup_steps:])
            n = sum(run["sizes"][warmup_steps:])
            per_run.append((n / t, statistics.median(run["times"][warmup_steps:])))
        sps = statistics.median(p[0] for p in per_run)
        step = statistics.median(p[1] for p in per_run)
        rows[v] = {"samples_per_s": round(sps, 1), "ms_per_step": round(step * 1e3, 3),
                   "s_per_epoch": round(step * rs[0]["batches_per_epoch"], 2),
                   "peak_rss_mib": round(max(run["peak_rss_mib"] for run in rs), 1),
                   "final_loss": rs[0]["losses"][-1], "runs": len(rs)}
        if rs[0]["peak_cuda_mib"] is not None:
            rows[v]["peak_cuda_mib"] = round(max(run["peak_cuda_mib"] for run in rs), 1)
    fl, ul = runs["fused"][0]["losses"], runs["unfused"][0]["losses"]
    agreement = compare_loss_curves(fl, ul)
    return {
        "config": config, "model": runs["fused"][0]["model"], "steps": len(fl),
        "warmup_steps": warmup_steps, "threads": threads or torch.get_num_threads(),
        "variants": rows,
        "speedup": round(rows["fused"]["samples_per_s"] / rows["unfused"]["samples_per_s"], 3),
        **agreement,
    }


# How the two loss curves must agree. float32 sums taken in another order (our kernels
# against oneDNN's) make the two trainings drift apart, slowly and then chaotically: af_cnn,
# 300 steps, 2 threads, per-step difference relative to the loss scale: 6e-7 up to step 5,
# 5e-6 to step 10, 3e-4 to step 20, 1e-2 by step 80, then 3-5e-2 from step 120 on (max-pool
# windows pick other elements once values differ in the last bits); the means over blocks of
# 20 steps stay within 1.2e-2. A wrong kernel shows from the first steps on (step 0 runs the
# same weights and batch through both models), so the early steps are held to a tight bound
# and the whole curve only to the same trend.
EARLY_STEPS, EARLY_RTOL = 10, 1e-3
TREND_BLOCK, TREND_RTOL = 20, 5e-2


def compare_loss_curves(fused: list[float], unfused: list[float]) -> dict:
    """Per-step loss curves of the two variants -> agreement figures and verdict.

    Differences are relative to the loss, but never to less than the unfused curve's median
    loss (a loss near zero late in training would inflate them)."""
    n = min(len(fused), len(unfused))
    fused, unfused = fused[:n], unfused[:n]
    finite = [abs(b) for b in unfused if math.isfinite(b)]
    scale = statistics.median(finite) if finite else 1.0

    def rel(a: float, b: float) -> float:
        if math.isnan(a) or math.isnan(b):  # NaN in one curve only: no agreement
            return 0.0 if math.isnan(a) and math.isnan(b) else math.inf
        return abs(a - b) / max(abs(b), scale, 1e-6)

    diffs = [rel(a, b) for a, b in zip(fused, unfused, strict=True)]
    width = min(TREND_BLOCK, n)  # whole blocks; a run shorter than one block is one block
    trend = [rel(statistics.fmean(fused[i:i + width]), statistics.fmean(unfused[i:i + width]))
             for i in range(0, n - width + 1, width)] if n else []
    nan = float("nan")
    early = max(diffs[:EARLY_STEPS]) if diffs else nan
    trend_max = max(trend) if trend else nan
    return {
        "loss_curve_max_rel_diff": max(diffs) if diffs else nan,
        "loss_early_max_rel_diff": early,
        "loss_trend_max_rel_diff": trend_max,
        "loss_agree": bool(early < EARLY_RTOL and trend_max < TREND_RTOL),
    }


def format_train(result: dict) -> str:
    """The table `lightdl bench train` prints for a result of `bench_train`."""
    lines = [f"lightdl bench train: {result['config']} ({result['model']}), {result['steps']} "
             f"steps, first {result['warmup_steps']} untimed, {result['threads']} thread(s)",
             f"  {'variant':<9} {'samples/s':>10} {'ms/step':>9} {'s/epoch':>8} "
             f"{'peak RSS MiB':>13} {'final loss':>11}"]
    for v, r in result["variants"].items():
        lines.append(f"  {v:<9} {r['samples_per_s']:>10.1f} {r['ms_per_step']:>9.2f} "
                     f"{r['s_per_epoch']:>8.2f} {r['peak_rss_mib']:>13.0f} {r['final_loss']:>11.5f}")
    lines.append(f"  fused / unfused: {result['speedup']:.2f}x samples/s; loss curves "
                 f"{'agree' if result['loss_agree'] else 'DIFFER'} (first {EARLY_STEPS} steps: "
                 f"max relative difference {result['loss_early_max_rel_diff']:.1e}, limit "
                 f"{EARLY_RTOL:.0e}; means of {TREND_BLOCK} steps: "
                 f"{result['loss_trend_max_rel_diff']:.1e}, limit {TREND_RTOL:.0e}; any step: "
                 f"{result['loss_curve_max_rel_diff']:.1e})")
    return "\n".join(lines)


def _worker(argv: list[str]) -> None:
    config, variant, steps, workdir, out, threads, *overrides = argv
    if int(threads):
        torch.set_num_threads(int(threads))
    import warnings

    warnings.filterwarnings("ignore")
    result = run_once(config, variant == "fused", int(steps), overrides, workdir)
    Path(out).write_text(json.dumps(result))


if __name__ == "__main__":
    _worker(sys.argv[1:])
