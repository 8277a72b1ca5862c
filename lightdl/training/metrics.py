"""torchmetrics collections per stage (train/, val/, test/)."""

from __future__ import annotations

from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassAUROC, MulticlassF1Score
from torchmetrics.regression import MeanAbsoluteError, MeanSquaredError, R2Score


def classification_metrics(num_classes: int, stage: str) -> MetricCollection:
    """acc (micro accuracy), f1 (macro F1) and auroc (macro one-vs-rest AUROC), taking
    probabilities (N, K) and labels (N,)."""
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(num_classes, average="micro"),
            "f1": MulticlassF1Score(num_classes, average="macro"),
            "auroc": MulticlassAUROC(num_classes, average="macro"),
        },
        prefix=f"{stage}/",
    )


def regression_metrics(stage: str) -> MetricCollection:
    """mae, mse and r2 (averaged over outputs when there are several)."""
    return MetricCollection(
        {
            "mae": MeanAbsoluteError(),
            "mse": MeanSquaredError(),
            "r2": R2Score(),
        },
        prefix=f"{stage}/",
    )
