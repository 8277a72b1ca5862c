"""Loss functions by name, as the course names them."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

CLASSIFICATION_LOSSES = ("cross_entropy", "bce")
REGRESSION_LOSSES = ("mse", "l1", "smooth_l1", "huber")


def classification_loss(name: str, num_classes: int, label_smoothing: float = 0.0,
                        class_weights: list[float] | None = None
                        ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """`loss(logits (N, K), y (N,) int64) -> scalar`.

    cross_entropy: softmax + negative log-likelihood. bce: sigmoid + binary cross-entropy,
    on the single logit (K = 1, y in {0, 1}) or one-vs-rest on one-hot targets (K > 1).
    """
    if name not in CLASSIFICATION_LOSSES:
        raise ValueError(f"loss must be one of {', '.join(CLASSIFICATION_LOSSES)}; got {name!r}")
    weight = torch.tensor(class_weights, dtype=torch.float32) if class_weights else None
    if weight is not None and len(weight) != num_classes:
        raise ValueError(f"class_weights has {len(weight)} entries for {num_classes} classes")

    def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        w = weight.to(logits.device) if weight is not None else None
        return F.cross_entropy(logits.float(), y, weight=w, label_smoothing=label_smoothing)

    def bce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if logits.shape[-1] == 1:
            return F.binary_cross_entropy_with_logits(logits[:, 0], y.float())
        target = F.one_hot(y, logits.shape[-1]).float()
        if label_smoothing:
            target = target * (1 - label_smoothing) + label_smoothing / logits.shape[-1]
        w = weight.to(logits.device) if weight is not None else None
        return F.binary_cross_entropy_with_logits(logits, target, pos_weight=w)

    return cross_entropy if name == "cross_entropy" else bce


def regression_loss(name: str, beta: float = 1.0
                    ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """`loss(pred, target) -> scalar`: mse (L2), l1 (MAE), smooth_l1 (quadratic below `beta`,
    linear above) or huber (smooth_l1 scaled by beta)."""
    if name not in REGRESSION_LOSSES:
        raise ValueError(f"loss must be one of {', '.join(REGRESSION_LOSSES)}; got {name!r}")
    if name in ("smooth_l1", "huber") and beta <= 0:
        raise ValueError(f"beta must be > 0 for {name}, got {beta}")
    fns = {
        "mse": lambda p, t: F.mse_loss(p.float(), t.float()),
        "l1": lambda p, t: F.l1_loss(p.float(), t.float()),
        "smooth_l1": lambda p, t: F.smooth_l1_loss(p.float(), t.float(), beta=beta),
        "huber": lambda p, t: F.huber_loss(p.float(), t.float(), delta=beta),
    }
    return fns[name]
