"""PNG plots of a run: learning curves, the confusion matrix, images, latent spaces and
generated series (matplotlib, no display)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig: Any, path: str | Path, dpi: int = 120) -> Path:
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def _series(history: Sequence[dict], key: str) -> tuple[list[int], list[float]]:
    pts = [(h["epoch"], h[key]) for h in history if key in h]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_learning_curves(history: Sequence[dict], path: str | Path, title: str = "") -> Path:
    """Loss, the main metric (accuracy, or MAE for regression) and the learning rate per
    epoch, train and validation side by side (the place to see under- and overfitting)."""
    keys = set().union(*history) if history else set()
    metric = next((m for m in ("acc", "mae", "mse", "errors", "recon") if f"train/{m}" in keys or f"val/{m}" in keys), None)
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
    return _save(fig, path)


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
    return _save(fig, path)


def _as_image(v: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    if len(shape) == 3:
        img = v.reshape(shape)
        return img[0] if shape[0] == 1 else np.moveaxis(img, 0, -1)
    side = int(round(np.sqrt(v.size)))
    return v.reshape(side, -1) if side * side == v.size else v.reshape(1, -1)


def plot_image_grid(rows: Sequence, shape: Sequence[int], path: str | Path,
                    rows_titles: Sequence[str] = ()) -> Path:
    """Rows of images (each row a (n, *shape) tensor or array), grey scale."""
    rows = [np.asarray(r) for r in rows]
    n = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), n, figsize=(0.9 * n, 1.0 * len(rows) + 0.3),
                             squeeze=False)
    for i, r in enumerate(rows):
        for j in range(n):
            ax = axes[i][j]
            ax.axis("off")
            if j < len(r):
                ax.imshow(_as_image(r[j], shape), cmap="gray_r")
        if i < len(rows_titles):
            axes[i][0].set_title(rows_titles[i], fontsize=8, loc="left")
    return _save(fig, path)


def plot_latent_space(z: np.ndarray, labels: np.ndarray, class_names: Sequence[str] | None,
                      path: str | Path) -> Path:
    """A 2-D latent space (the encoder's means), one colour per class."""
    fig, ax = plt.subplots(figsize=(5.5, 4.8))
    classes = np.unique(labels)
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for k, c in enumerate(classes):
        sel = labels == c
        name = class_names[int(c)] if class_names and int(c) < len(class_names) else str(c)
        ax.scatter(z[sel, 0], z[sel, 1], s=8, color=cmap(k % cmap.N), label=name)
    ax.set_xlabel("z1")
    ax.set_ylabel("z2")
    ax.set_title("latent space (encoder means)")
    ax.legend(fontsize=7, markerscale=2, ncol=2)
    return _save(fig, path)


def plot_generated_series(real: dict[str, Any], generated: dict[str, Any],
                          stats: dict[str, dict[str, dict[str, float]]],
                          path: str | Path) -> Path:
    """One row per class: real series (left) and generated ones (right), channel 0 of each
    (n, C, L) tensor or array, on a shared value axis; titles give mean SD and RMSSD."""
    names = list(generated)
    fig, axes = plt.subplots(len(names), 2, figsize=(10, 2.3 * len(names) + 0.4),
                             squeeze=False, sharey=True)
    for i, name in enumerate(names):
        for j, (kind, series) in enumerate((("real", real.get(name)),
                                            ("generated", generated[name]))):
            ax = axes[i][j]
            s = stats.get(name, {}).get(kind) or {}
            title = f"{name}: {kind}" + (f" (SD {s['sd']:.3g}, RMSSD {s['rmssd']:.3g})"
                                         if "sd" in s else "")
            ax.set_title(title, fontsize=9, loc="left")
            ax.grid(alpha=0.3)
            if series is None or len(series) == 0:
                continue
            for k, v in enumerate(np.asarray(series)[:, 0]):
                ax.plot(v, lw=0.9, color=plt.get_cmap("tab10")(k % 10))
        axes[i][0].set_ylabel("value")
    for ax in axes[-1]:
        ax.set_xlabel("step")
    return _save(fig, path)


def plot_gradient_norms(history: Sequence[dict], path: str | Path) -> Path:
    """Each weight's mean gradient norm per epoch (log scale), coloured first layer (dark)
    to last (light), so that vanishing or exploding gradients show as a fan of lines."""
    names = [k for k in history[0] if k.startswith("grad_norm/")]
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    cmap = plt.get_cmap("viridis")
    for i, name in enumerate(names):
        xs, ys = _series(history, name)
        ax.plot(xs, ys, marker=".", color=cmap(i / max(len(names) - 1, 1)),
                label=name.removeprefix("grad_norm/"))
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean L2 norm of the gradient")
    ax.set_title("gradient norms per weight, first layer to last")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2 if len(names) > 8 else 1)
    return _save(fig, path)


def _histogram(ax: Any, values: dict[str, Any], acts: dict[str, str], colors: dict[str, Any],
               bins: np.ndarray, title: str) -> None:
    for name, v in values.items():
        v = np.asarray(v, dtype=np.float64)
        label = name
        if acts.get(name) == "relu" and v.size:  # the spike at 0 would flatten the rest
            label += f" ({np.mean(v <= 0):.0%} at 0)"
            v = v[v > 0]
        if v.size:
            ax.hist(v, bins=bins, density=True, histtype="step", linewidth=1.2,
                    color=colors.get(name, "k"), label=label)
    ax.set_xlabel("activation")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if values:
        ax.legend(fontsize=6, ncol=2 if len(values) > 6 else 1)


def plot_activation_stats(history: Sequence[dict], init_values: dict[str, Any],
                          last_values: dict[str, Any], path: str | Path) -> Path:
    """Each layer's activation histogram at initialisation and at the last epoch, each
    layer's mean +- std over the epochs, and its share of flat activations (saturated, or a
    ReLU at zero) with dead ReLU units dashed; layers coloured first (dark) to last (light)."""
    acts = {k: s["act"] for h in history for k, s in h["layers"].items()}
    names = list(acts)
    cmap = plt.get_cmap("viridis")
    colors = {n: cmap(i / max(len(names) - 1, 1)) for i, n in enumerate(names)}
    both = [np.asarray(v, dtype=np.float64) for v in (*init_values.values(),
                                                       *last_values.values())]
    both = np.concatenate([v[np.isfinite(v)] for v in both]) if both else np.zeros(0)
    lo, hi = np.quantile(both, [0.001, 0.999]) if both.size else (0.0, 1.0)
    bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 61)
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    last = history[-1]["epoch"] if history else 0
    _histogram(axes[0, 0], init_values, acts, colors, bins,
               "activations at initialisation (first batch)")
    _histogram(axes[0, 1], last_values, acts, colors, bins, f"activations at epoch {last}")
    ax = axes[1, 0]
    for name in names:
        pts = [(h["epoch"], h["layers"][name]["mean"], h["layers"][name]["std"])
               for h in history if "mean" in h["layers"].get(name, {})]
        if pts:
            xs, mean, std = (np.asarray(c) for c in zip(*pts, strict=True))
            ax.plot(xs, mean, marker=".", color=colors[name], label=name)
            ax.fill_between(xs, mean - std, mean + std, color=colors[name], alpha=0.12)
    ax.set_xlabel("epoch")
    ax.set_ylabel("activation")
    ax.set_title("mean +- std per layer")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2 if len(names) > 6 else 1)
    ax = axes[1, 1]
    for name in names:
        for key, style in (("flat", "-"), ("dead", "--")):
            pts = [(h["epoch"], h["layers"][name][key]) for h in history
                   if key in h["layers"].get(name, {})]
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, style, marker=".", color=colors[name],
                        label=name if key == "flat" else None)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("epoch")
    ax.set_ylabel("share")
    ax.set_title("flat activations (solid), dead ReLU units (dashed)")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6, ncol=2 if len(names) > 6 else 1)
    return _save(fig, path, dpi=110)
