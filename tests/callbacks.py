"""Callbacks the training tests inject into `lightdl fit` runs (via --trainer.callbacks+=)."""

from __future__ import annotations

import json
import os
import signal

import lightning as L
import torch


class KillAtStep(L.Callback):
    """SIGKILL this process after global step `step`: a run dying without any clean-up."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class RankChecksum(L.Callback):
    """After training, every rank's weights (as one float64 vector) are gathered; rank 0
    writes them, the world size and the step count to the JSON file `path`."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_end(self, trainer, pl_module) -> None:
        flat = torch.cat([p.detach().double().flatten() for p in pl_module.parameters()])
        gathered = pl_module.all_gather(flat)  # (world, n)
        if trainer.global_rank == 0:
            with open(self.path, "w") as f:
                json.dump({"world_size": trainer.world_size, "global_step": trainer.global_step,
                           "weights": gathered.reshape(trainer.world_size, -1).tolist()}, f)
