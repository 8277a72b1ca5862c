"""`RunArtifacts`: what a run leaves in its directory besides checkpoints and logs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_only

from lightdl.training.plots import plot_confusion_matrix, plot_learning_curves


def run_dir(trainer: L.Trainer) -> Path:
    """The run directory: the first logger's versioned folder, else default_root_dir.

    trainer.log_dir is a collective call under DDP (rank 0 broadcasts it): call this on every
    rank at the same point (a `setup` hook), never from rank-0-only code."""
    return Path(trainer.log_dir or trainer.default_root_dir)


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    out = {}
    for k, v in metrics.items():
        if isinstance(v, torch.Tensor) and v.numel() == 1:
            out[k] = float(v)
        elif isinstance(v, (int, float)):
            out[k] = float(v)
    return out


class RunArtifacts(L.Callback):
    """Records every epoch's metrics (independent of the logger chosen) and writes
    `learning_curves.png` after fitting, `confusion_matrix.png` and `test_metrics.json`
    after testing, into the run directory. Its history is saved in checkpoints, so a
    resumed run draws the whole curve."""

    def __init__(self) -> None:
        self.history: list[dict[str, float]] = []
        self.test_metrics: dict[str, float] = {}
        self.dir: Path | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.dir = run_dir(trainer)  # on every rank, see run_dir

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run:
            return
        # Callbacks' on_train_epoch_end runs before the module's, where the train metrics are
        # logged: have them logged now so that this row has them.
        if hasattr(pl_module, "log_epoch_metrics"):
            pl_module.log_epoch_metrics("train")
        row = {"epoch": trainer.current_epoch, **_scalars(trainer.callback_metrics)}
        self.history = [h for h in self.history if h["epoch"] != row["epoch"]] + [row]

    @rank_zero_only
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.history and not trainer.fast_dev_run:
            d = self.dir
            d.mkdir(parents=True, exist_ok=True)
            plot_learning_curves(self.history, d / "learning_curves.png",
                                 title=type(pl_module.model).__name__)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.test_metrics = {k: v for k, v in _scalars(trainer.callback_metrics).items()
                             if k.startswith("test/")}
        if trainer.global_rank != 0 or trainer.fast_dev_run:  # like Lightning: no files
            return
        d = self.dir
        d.mkdir(parents=True, exist_ok=True)
        (d / "test_metrics.json").write_text(json.dumps(self.test_metrics, indent=2) + "\n")
        cm = getattr(pl_module, "test_confusion", None)
        if cm is not None:
            plot_confusion_matrix(cm.numpy(), getattr(pl_module, "class_names", []),
                                  d / "confusion_matrix.png")

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))


class PredictionWriter(BasePredictionWriter):
    """Writes `predictions.csv` (one row per sample: prediction, target, class
    probabilities; for a generator: the class and the generated series) into the run
    directory at the end of `lightdl predict`."""

    def __init__(self) -> None:
        super().__init__(write_interval="epoch")
        self.path: Path | None = None
        self.dir: Path | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.dir = run_dir(trainer)  # on every rank, see run_dir

    def write_on_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           predictions: Any, batch_indices: Any) -> None:
        if trainer.global_rank != 0 or not predictions or trainer.fast_dev_run:
            return
        rows = predictions[0] if isinstance(predictions[0], list) else predictions
        names = getattr(pl_module, "class_names", None)
        d = self.dir
        d.mkdir(parents=True, exist_ok=True)
        self.path = d / "predictions.csv"
        if "series" in rows[0]:  # a generator: one generated series per row
            _write_series(self.path, torch.cat([r["class"].cpu() for r in rows]),
                          [r["series"].detach().cpu() for r in rows], names)
            return
        keys = rows[0].keys()
        cols = {k: torch.cat([r[k].detach().cpu() for r in rows]) for k in keys}
        pred, target = cols["pred"], cols["target"]
        header = ["index", *_names("pred", pred), *_names("target", target)]
        probs = cols.get("probs")
        if probs is not None:
            header += [f"p_{names[j] if names and j < len(names) else j}" for j in range(probs.shape[1])]
        with open(self.path, "w") as f:
            f.write(",".join(header) + "\n")
            for i in range(len(pred)):
                vals = [str(i), *_fmt(pred[i]), *_fmt(target[i])]
                if probs is not None:
                    vals += [f"{float(p):.6g}" for p in probs[i]]
                f.write(",".join(vals) + "\n")


def _names(name: str, col: torch.Tensor) -> list[str]:
    """One column for a value per sample, name_0, name_1, ... for a vector (a VAE's latent
    means, a multi-output regression)."""
    return [name] if col.dim() == 1 else [f"{name}_{j}" for j in range(col[0].numel())]


def _fmt(v: torch.Tensor) -> list[str]:
    return [str(int(e)) if not e.is_floating_point() else f"{float(e):.6g}" for e in v.flatten()]


def _write_series(path: Path, classes: torch.Tensor, batches: list[torch.Tensor],
                  names: list[str] | None) -> None:
    """Rows `index, class, t0, t1, ...` (one channel) or `c0_t0, ..., c1_t0, ...`; batches
    of (B, C, L_i) series, NaN past a series' end (empty cells)."""
    length = max(b.shape[-1] for b in batches)
    series = torch.cat([F.pad(b.float(), (0, length - b.shape[-1]), value=float("nan"))
                        for b in batches])
    n, channels, _ = series.shape
    cols = ([f"t{t}" for t in range(length)] if channels == 1 else
            [f"c{c}_t{t}" for c in range(channels) for t in range(length)])
    with open(path, "w") as f:
        f.write(",".join(["index", "class", *cols]) + "\n")
        for i in range(n):
            c = int(classes[i])
            name = names[c] if names and c < len(names) else str(c)
            values = ("" if v != v else f"{v:.6g}" for v in series[i].flatten().tolist())
            f.write(",".join([str(i), name, *values]) + "\n")
