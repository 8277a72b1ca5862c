"""PNG plots of a run: learning curves and the confusion matrix (matplotlib, no display)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _series(history: Sequence[dict], key: str) -> tuple[list[int], list[float]]:
    pts = [(h["epoch"], h[key]) for h in history if key in h]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_learning_curves(history: Sequence[dict], path: str | Path, title: str = "") -> Path:
    """Loss, the main metric (accuracy, or MAE for regression) and the learning rate per
    epoch, train and validation side by side (the place to see under- and overfitting)."""
    keys = set().union(*history) if history else set()
    metric = next((m for m in ("acc", "mae", "errors") if f"train/{m}" in keys or f"val/{m}" in keys), None)
    panels = ["loss"] + ([metric] if metric else []) + (["lr"] if "lr" in keys else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, name in zip(axes[0], panels, strict=True):
        if name == "lr":
            ax.plot(*_series(history, "lr"), marker=".", color="tab:gray")
            ax.set_yscale("log")
        else:
            for stage, color in (("train", "tab:blue"), ("val", "tab:orange")):
                xs, ys = _series(history, f"{stage}/{name}")
                if xs:
                    ax.plot(xs, ys, marker=".", color=color, label=stage)
            ax.legend()
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_confusion_matrix(cm: np.ndarray, class_names: Sequence[str], path: str | Path,
                          title: str = "test confusion matrix") -> Path:
    """Counts, with each row (true class) shaded by its share of the row."""
    cm = np.asarray(cm)
    share = cm / np.clip(cm.sum(1, keepdims=True), 1, None)
    n = len(cm)
    size = max(3.5, 0.6 * n + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{int(cm[i, j])}\n{share[i, j]:.0%}", ha="center", va="center",
                    fontsize=8, color="white" if share[i, j] > 0.5 else "black")
    names = list(class_names)[:n] + [str(i) for i in range(len(class_names), n)]
    ax.set_xticks(range(n), names, rotation=45, ha="right")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
