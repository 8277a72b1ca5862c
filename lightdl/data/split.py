"""Seeded, stratified train/val/test splits by group (record or subject), never by window.

Windows cut from one recording are strongly correlated; putting windows of the same record
or subject in both train and test inflates accuracy (DATA.md: published window-level AF
results are partly this), so every split here assigns whole groups.
"""

from __future__ import annotations

import numpy as np


def _counts(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    n_test = int(round(n * test_fraction))
    n_val = int(round(n * val_fraction))
    # when a stratum has room, give each requested split at least one group
    if test_fraction > 0 and n_test == 0 and n >= 3:
        n_test = 1
    if val_fraction > 0 and n_val == 0 and n - n_test >= 2:
        n_val = 1
    while n_val + n_test >= n and n_val + n_test > 0:  # keep >= 1 group for training
        if n_val >= n_test and n_val > 0:
            n_val -= 1
        else:
            n_test -= 1
    return n_val, n_test


def split_groups(
    groups: np.ndarray,
    strata: np.ndarray,
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> dict[str, np.ndarray]:
    """Assign each distinct group to train, val or test.

    Args:
        groups: ``(G,)`` distinct group ids (records / subjects).
        strata: ``(G,)`` stratum of each group (its class or record kind); the fractions are
            applied within every stratum (rounded; each stratum with >= 3 groups gives at
            least one group to val and test when their fractions are > 0).
        val_fraction, test_fraction: shares of groups for validation and test.
        seed: permutation seed.

    Returns:
        ``{"train": ids, "val": ids, "test": ids}`` (sorted arrays of group ids).
    """
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ValueError(
            f"val_fraction ({val_fraction}) and test_fraction ({test_fraction}) must be >= 0 "
            "and sum to less than 1"
        )
    groups = np.asarray(groups)
    strata = np.asarray(strata)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 11]))
    out: dict[str, list] = {"train": [], "val": [], "test": []}
    for s in sorted(set(strata.tolist()), key=str):
        g = groups[strata == s]
        g = g[rng.permutation(len(g))]
        n_val, n_test = _counts(len(g), val_fraction, test_fraction)
        out["test"].extend(g[:n_test].tolist())
        out["val"].extend(g[n_test : n_test + n_val].tolist())
        out["train"].extend(g[n_test + n_val :].tolist())
    return {k: np.sort(np.asarray(v, dtype=groups.dtype)) for k, v in out.items()}


def split_indices(
    sample_groups: np.ndarray,
    group_ids: np.ndarray,
    group_strata: np.ndarray,
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> dict[str, np.ndarray]:
    """Sample indices per split from each sample's group (see :func:`split_groups`)."""
    parts = split_groups(group_ids, group_strata, val_fraction, test_fraction, seed)
    return {k: np.flatnonzero(np.isin(sample_groups, v)) for k, v in parts.items()}
