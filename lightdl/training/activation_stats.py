"""`ActivationStats`: how each layer's activations are distributed as a model trains, the way
to see saturated sigmoids and tanhs and dead ReLUs (and why their gradients vanish)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from lightdl.models._layers import Conv1dAct, LinearAct
from lightdl.training._task import EPOCH_LOG, is_last_batch
from lightdl.training.callbacks import run_dir

# An activation is "flat" where its slope is below this share of its largest: there it passes
# almost no gradient back (a sigmoid below 0.013 or above 0.987, a tanh beyond +-0.975, a ReLU
# at zero; a leaky ReLU's negative side too while its slope alpha is below this share).
FLAT_SLOPE = 0.05
_TORCH_ACTS: dict[type, str] = {nn.ReLU: "relu", nn.LeakyReLU: "leaky_relu",
                                nn.Sigmoid: "sigmoid", nn.Tanh: "tanh", nn.GELU: "gelu",
                                nn.SiLU: "silu"}


@dataclass(frozen=True)
class ActivationPoint:
    """A module whose output is a layer's activations."""
    name: str
    module: nn.Module
    act: str
    alpha: float
    features_last: bool  # units along the last dim (Linear), else dim 1 (Conv, BatchNorm)


def _act_of(module: nn.Module) -> tuple[str, float] | None:
    act = getattr(module, "act", None)
    if isinstance(act, str):  # lightdl's fused layers and activation modules
        return None if act == "identity" else (act, float(getattr(module, "alpha", 0.01)))
    name = _TORCH_ACTS.get(type(module))
    if name is None:
        return None
    return name, float(getattr(module, "negative_slope", 0.01))


def activation_points(model: nn.Module) -> list[ActivationPoint]:
    """The modules of `model` whose outputs are activations, first to last: lightdl's layers
    with an activation in their epilogue (FusedLinear, FusedConv1d, FusedBatchNorm1d, the
    fused poolings: there the activations come out pooled), activation modules (lightdl's and
    torch.nn's ReLU, LeakyReLU, Sigmoid, Tanh, GELU, SiLU), and the models' Linear/Conv1d +
    activation pairs as one point, named after the pair, so that a fused model and its
    `fused=False` twin list the same names."""
    points: list[ActivationPoint] = []
    inside: list[str] = []
    for name, m in model.named_modules():
        if any(name.startswith(p + ".") for p in inside):
            continue
        if isinstance(m, (LinearAct, Conv1dAct)):
            inner = m.linear if isinstance(m, LinearAct) else m.conv
            found = _act_of(inner) or _act_of(m.act)
            inside.append(name)
        else:
            found = _act_of(m)
        if found is not None:
            last = isinstance(m, (LinearAct, nn.Linear))
            points.append(ActivationPoint(name, m, found[0], found[1], last))
    return points


def has_flat_part(act: str, alpha: float = 0.01) -> bool:
    """Whether `act` has a part with a slope below FLAT_SLOPE of its largest (GELU and SiLU
    have none worth the name)."""
    return act in ("relu", "sigmoid", "tanh") or (act == "leaky_relu" and abs(alpha) < FLAT_SLOPE)


def flat_mask(y: torch.Tensor, act: str, alpha: float = 0.01) -> torch.Tensor | None:
    """Where the activations `y` (outputs of `act`) sit on a flat part of the function (slope
    below FLAT_SLOPE of its largest); None for activations without one."""
    if not has_flat_part(act, alpha):
        return None
    if act in ("relu", "leaky_relu"):
        return y <= 0
    if act == "sigmoid":
        return 4 * y * (1 - y) < FLAT_SLOPE  # sigmoid' = y (1 - y), at most 1/4
    if act == "tanh":
        return 1 - y * y < FLAT_SLOPE
    return None


@dataclass
class LayerStats:
    """Running statistics of one layer's activations over the batches it is fed."""
    act: str
    alpha: float = 0.01
    features_last: bool = True
    sample_size: int = 2048  # values kept per batch, for the histograms
    n: int = 0
    total: torch.Tensor | float = 0.0
    total_sq: torch.Tensor | float = 0.0
    flat: torch.Tensor | float = 0.0
    active: torch.Tensor | None = None  # per unit: was it ever > 0 (ReLU only)
    samples: list[torch.Tensor] = field(default_factory=list)

    def add(self, y: torch.Tensor) -> None:
        """One batch of activations, (B, F) or (B, ..., F) with features last, else (B, C, ...)."""
        if y.numel() == 0:
            return
        y = y.detach()
        yd = y.double()
        self.n += y.numel()
        self.total = self.total + yd.sum()
        self.total_sq = self.total_sq + (yd * yd).sum()
        mask = flat_mask(y.float(), self.act, self.alpha)
        if mask is not None:
            self.flat = self.flat + mask.sum()
        if self.act == "relu":  # a unit that never leaves zero is dead (a leaky one is not)
            dim = y.dim() - 1 if self.features_last or y.dim() < 3 else 1
            units = (y > 0).movedim(dim, -1).reshape(-1, y.shape[dim]).any(0)
            self.active = units if self.active is None else self.active | units
        values = y.flatten()
        step = max(1, values.numel() // self.sample_size)
        while step > 1 and math.gcd(step, y.shape[-1]) != 1:
            step += 1  # a stride sharing a factor with the row length would skip whole units
        self.samples.append(values[::step][: self.sample_size].float())

    def summary(self) -> dict[str, Any]:
        """{"act", "mean", "std", "flat" (share, where defined), "dead" (share of units never
        active, ReLU only)}."""
        if not self.n:
            return {"act": self.act}
        mean = float(self.total) / self.n
        var = max(float(self.total_sq) / self.n - mean * mean, 0.0)
        out: dict[str, Any] = {"act": self.act, "mean": mean, "std": var ** 0.5}
        if has_flat_part(self.act, self.alpha):
            out["flat"] = float(self.flat) / self.n
        if self.active is not None:
            out["dead"] = 1.0 - float(self.active.double().mean())
        return out

    def values(self) -> torch.Tensor:
        """The sampled activations (CPU, float32)."""
        return torch.cat(self.samples).cpu() if self.samples else torch.zeros(0)


class ActivationStats(L.Callback):
    """Watches every layer's activations (see `activation_points`) during the first `batches`
    training batches of each epoch, in the forward pass training runs: logs per layer
    `act_flat/<layer>`, the share of activations on a flat part of the function (slope below
    5% of its largest: a saturated sigmoid or tanh, a ReLU at zero), where little gradient
    passes back, and for ReLU layers `act_dead/<layer>`, the share of units that were
    never active (a dead ReLU gets no gradient, so it stays dead). After fitting it writes
    activation_stats.json (mean, std, flat and dead per layer and epoch, and at
    initialisation: the run's first batch, before any step) and activation_stats.png: each
    layer's histogram at initialisation and at the last epoch, and the flat shares over the
    epochs.

    In a config: `trainer.callbacks: [{class_path: lightdl.training.ActivationStats}]`.

    Args:
        batches: training batches watched per epoch (from its start).
    """

    def __init__(self, batches: int = 4) -> None:
        if batches < 1:
            raise ValueError(f"ActivationStats: batches must be >= 1, got {batches}")
        self.batches = batches
        self.history: list[dict[str, Any]] = []  # per epoch: {"epoch", "layers": {name: summary}}
        self.init: dict[str, Any] | None = None  # {"layers": {...}, "values": {name: tensor}}
        self.last_values: dict[str, torch.Tensor] = {}
        self.dir: Path | None = None
        self._points: list[ActivationPoint] = []
        self._epoch: dict[str, LayerStats] = {}
        self._snapshot_init = False  # the batch now watched is the run's first
        self._hooks: list[torch.utils.hooks.RemovableHandle] = []

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.dir = run_dir(trainer)  # on every rank: a collective call under DDP

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._points = activation_points(getattr(pl_module, "model", pl_module))
        if not self._points:
            rank_zero_warn("ActivationStats: the model has no activation layers to watch (an "
                           "LSTM's or GRU's gates are inside its op)")

    def _new(self) -> dict[str, LayerStats]:
        return {p.name: LayerStats(p.act, p.alpha, p.features_last) for p in self._points}

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch = self._new()

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule,
                             batch: Any, batch_idx: int) -> None:
        if batch_idx >= self.batches or not self._points:
            return
        self._snapshot_init = trainer.global_step == 0 and batch_idx == 0 and self.init is None
        self._remove_hooks()
        for p in self._points:
            self._hooks.append(p.module.register_forward_hook(self._hook(p.name)))

    def _hook(self, name: str) -> Any:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if isinstance(output, torch.Tensor):
                self._epoch[name].add(output)
        return hook

    def _remove_hooks(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        self._remove_hooks()
        if self._snapshot_init:  # the epoch's statistics so far are the first batch's
            self.init = {"layers": {k: s.summary() for k, s in self._epoch.items()},
                         "values": {k: s.values() for k, s in self._epoch.items()}}
            self._snapshot_init = False
        if is_last_batch(trainer, "train", batch_idx):
            self._log(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._remove_hooks()
        self._log(trainer, pl_module)  # an epoch of unknown length (a no-op otherwise)

    def _log(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not any(s.n for s in self._epoch.values()):
            return
        layers = {k: s.summary() for k, s in self._epoch.items() if s.n}
        values = {}
        for k, s in layers.items():
            if "flat" in s:
                values[f"act_flat/{k}"] = s["flat"]
            if "dead" in s:
                values[f"act_dead/{k}"] = s["dead"]
        self.last_values = {k: s.values() for k, s in self._epoch.items() if s.n}
        self._epoch = self._new()
        if values:
            pl_module.log_dict(values, **EPOCH_LOG)
        if not trainer.fast_dev_run:
            self.history = [h for h in self.history if h["epoch"] != trainer.current_epoch]
            self.history.append({"epoch": trainer.current_epoch, "layers": layers})

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_rank != 0 or not self.history or self.dir is None:
            return
        from lightdl.training.plots import plot_activation_stats

        self.dir.mkdir(parents=True, exist_ok=True)
        init = self.init["layers"] if self.init is not None else None
        (self.dir / "activation_stats.json").write_text(json.dumps(
            {"flat_slope": FLAT_SLOPE, "batches_per_epoch": self.batches, "init": init,
             "epochs": self.history}, indent=1))
        plot_activation_stats(self.history, self.init["values"] if self.init else {},
                              self.last_values, self.dir / "activation_stats.png")

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history, "init": self.init, "last_values": self.last_values}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))
        self.init = state_dict.get("init")
        self.last_values = dict(state_dict.get("last_values", {}))
