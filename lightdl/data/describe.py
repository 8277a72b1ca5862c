"""``lightdl data describe``: class balance, lengths and a PNG of example series per class.

Syntax::

    python -m lightdl.data.describe DATA [--arg KEY=VALUE ...] [--out FILE.png]
                                         [--examples N] [--split train|val|test]
    python -m lightdl.data.describe --config run.yaml [--arg KEY=VALUE ...] [--out ...]

``DATA`` is a short name - ``rr``, ``stride`` (alias ``gait``), ``ucr``, ``digits``,
``logic`` (alias ``gates``) - or a class path such as ``lightdl.data.RRIntervalDataModule``
or ``mypkg.MyDataModule``.  Each ``--arg KEY=VALUE`` becomes a constructor argument, the
value read as YAML (``--arg window=128``, ``--arg classes=[control,parkinson]``,
``--arg augment=[jitter]``).  With ``--config`` the ``data:`` section of a LightningCLI
YAML file (``class_path`` + ``init_args``) is used and ``--arg`` overrides it.

Prints the class counts per split, the series lengths and the number of records/subjects
per split, saves a figure (default ``describe_<data>.png``) and prints its path.
Examples::

    python -m lightdl.data.describe rr --arg window=60 --out af.png
    python -m lightdl.data.describe ucr --arg root=~/ucr --arg name=GunPoint
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml

SHORT_NAMES = {
    "rr": "lightdl.data.RRIntervalDataModule",
    "af": "lightdl.data.RRIntervalDataModule",
    "stride": "lightdl.data.StrideIntervalDataModule",
    "gait": "lightdl.data.StrideIntervalDataModule",
    "ucr": "lightdl.data.UCRDataModule",
    "digits": "lightdl.data.DigitsDataModule",
    "logic": "lightdl.data.LogicGatesDataModule",
    "gates": "lightdl.data.LogicGatesDataModule",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lightdl data describe",
        description="Describe a data module: class balance, lengths, example plot.",
        epilog="example: lightdl data describe rr --arg window=60 --out af.png",
    )
    p.add_argument("data", nargs="?", help=f"short name ({', '.join(SHORT_NAMES)}) or class path")
    p.add_argument("--config", help="LightningCLI YAML file whose data: section to use")
    p.add_argument(
        "--arg",
        "-a",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="constructor argument (value parsed as YAML); repeatable",
    )
    p.add_argument("--out", "-o", help="PNG path (default describe_<data>.png)")
    p.add_argument("--examples", "-n", type=int, default=3, help="examples per class (default 3)")
    p.add_argument(
        "--split",
        default="train",
        choices=["train", "val", "test"],
        help="split the examples come from (default train)",
    )
    return p


def _resolve(name: str) -> type:
    path = SHORT_NAMES.get(name.lower(), name)
    module, _, cls = path.rpartition(".")
    if not module:
        raise SystemExit(
            f"describe: unknown data {name!r}; use one of {list(SHORT_NAMES)} or a class path"
        )
    try:
        return getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError) as exc:
        raise SystemExit(f"describe: cannot import {path}: {exc}") from exc


def build_datamodule(args: argparse.Namespace) -> tuple[Any, str]:
    """Instantiate the data module named on the command line; returns it and a short label."""
    init: dict[str, Any] = {}
    data = args.data
    if args.config:
        cfg = yaml.safe_load(Path(args.config).read_text()) or {}
        section = cfg.get("data") or {}
        data = data or section.get("class_path")
        init.update(section.get("init_args") or {})
    if not data:
        raise SystemExit(
            "describe: name the data (e.g. 'rr') or give --config with a data: section"
        )
    for item in args.arg:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"describe: --arg expects KEY=VALUE, got {item!r}")
        init[key.strip()] = yaml.safe_load(value)
    cls = _resolve(data)
    return cls(**init), data.rsplit(".", 1)[-1].lower()


def _split_info(dm: Any, split: str) -> tuple[np.ndarray, np.ndarray | None, int | None]:
    """``(labels, lengths or None, number of groups or None)`` of one split."""
    arrays = getattr(dm, "split_arrays", None)
    if arrays is not None:
        a = arrays(split)
        return np.asarray(a.y), np.asarray(a.lengths), len(np.unique(a.groups))
    ds = getattr(dm, f"{split}_dataset")
    y = np.array([int(item[-1]) for item in ds])
    return y, None, None


def _examples(dm: Any, split: str, per_class: int) -> dict[int, list[np.ndarray]]:
    ds = getattr(dm, f"{split}_dataset")
    rng = np.random.default_rng(0)
    out: dict[int, list[np.ndarray]] = {c: [] for c in range(dm.num_classes)}
    for i in rng.permutation(len(ds)):
        item = ds[int(i)]
        c = int(item[-1])
        x = item[0].numpy()
        if len(item) == 3:
            x = x[..., : int(item[1])]
        if len(out[c]) < per_class:
            out[c].append(x)
        if all(len(v) >= per_class for v in out.values()):
            break
    return out


def _plot(dm: Any, examples: dict[int, list[np.ndarray]], title: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dm.class_names)
    shape = tuple(dm.input_shape)
    if len(shape) == 1 and shape[0] == 2:  # logic gates: one scatter plot
        fig, ax = plt.subplots(figsize=(4, 4))
        ds = dm.train_dataset
        x = np.stack([ds[i][0].numpy() for i in range(len(ds))])
        y = np.array([int(ds[i][1]) for i in range(len(ds))])
        for c in range(dm.num_classes):
            ax.scatter(*x[y == c].T, label=names[c], alpha=0.6)
        ax.set_xlabel("x1"), ax.set_ylabel("x2"), ax.legend(), ax.set_title(title)
    else:
        n_cols = max(len(v) for v in examples.values()) or 1
        fig, axes = plt.subplots(
            dm.num_classes, n_cols, figsize=(3.2 * n_cols, 1.9 * dm.num_classes), squeeze=False
        )
        mean = np.atleast_1d(
            getattr(dm, "norm_mean", None) if getattr(dm, "normalize", None) == "global" else 0.0
        )
        std = np.atleast_1d(
            getattr(dm, "norm_std", None) if getattr(dm, "normalize", None) == "global" else 1.0
        )
        for c in range(dm.num_classes):
            for j in range(n_cols):
                ax = axes[c, j]
                if j >= len(examples[c]):
                    ax.axis("off")
                    continue
                x = examples[c][j]
                if x.ndim == 3 or (x.ndim == 1 and x.size == 64):  # images
                    ax.imshow(x.reshape(8, 8) if x.size == 64 else x[0], cmap="gray_r")
                    ax.set_xticks([]), ax.set_yticks([])
                else:
                    x = x * std[:, None] + mean[:, None]  # back to file units when we can
                    for ch in x:
                        ax.plot(ch, lw=0.9)
                    ax.tick_params(labelsize=7)
                if j == 0:
                    ax.set_ylabel(names[c], fontsize=9)
        units = "s" if getattr(dm, "normalize", None) == "global" else getattr(dm, "normalize", "")
        fig.suptitle(f"{title} - examples per class ({units})", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def describe(dm: Any, label: str, out: Path, per_class: int = 3, split: str = "train") -> str:
    """Set up ``dm``, build the text report, save the figure to ``out``; returns the report."""
    dm.setup("fit")
    names = list(dm.class_names)
    lines = [
        f"{type(dm).__name__}: {dm.num_classes} classes {names}, input_shape "
        f"{tuple(dm.input_shape)}, variable_length {dm.variable_length}",
    ]
    width = max(12, *(len(n) + 9 for n in names))
    lines.append(f"{'split':<6} {'n':>6} {'groups':>7}  " + "".join(f"{n:>{width}}" for n in names))
    length_lines = []
    for split_name in ("train", "val", "test"):
        y, lengths, n_groups = _split_info(dm, split_name)
        counts = np.bincount(y, minlength=dm.num_classes)
        cells = "".join(f"{f'{k} ({100 * k / max(1, len(y)):.1f}%)':>{width}}" for k in counts)
        lines.append(
            f"{split_name:<6} {len(y):>6} {n_groups if n_groups is not None else '-':>7}  {cells}"
        )
        if lengths is not None and len(lengths):
            med = int(np.median(lengths))
            length_lines.append(
                f"  {split_name:<5} min {lengths.min()}  median {med}  max {lengths.max()}"
            )
    if length_lines:
        lines.append("series lengths (time steps):")
        lines.extend(length_lines)
    _plot(dm, _examples(dm, split, per_class), type(dm).__name__, out)
    lines.append(f"saved example plot to {out.resolve()}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``lightdl data describe`` / ``python -m lightdl.data.describe``."""
    args = _parser().parse_args(argv)
    dm, label = build_datamodule(args)
    out = Path(args.out or f"describe_{label}.png")
    print(describe(dm, label, out, args.examples, args.split))
    return 0


if __name__ == "__main__":
    sys.exit(main())
