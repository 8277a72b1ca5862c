"""Synthetic stride-interval series: control, Parkinson's, Huntington's and ALS.

Model (DATA.md, section 2): a subject's series is ``mean + sd * fGn(H)`` where fGn is exact
fractional Gaussian noise (Davies-Harte, see :mod:`.fgn`) whose Hurst exponent ``H`` equals
the DFA alpha of the group.  Each subject draws its own mean stride time, CV and alpha
from the group's normal distribution below; the series is rescaled so that its sample mean
and CV equal the drawn values.  A data set is a set of subjects (split by subject).

=========== ================ ================ ================
group        mean stride (s)  CV (%)           alpha (= H)
=========== ================ ================ ================
control      1.03 +- 0.08     2.8 +- 0.8       0.87 +- 0.15
parkinson    1.10 +- 0.10     5.6 +- 1.6       0.70 +- 0.15
huntington   1.11 +- 0.15     8.4 +- 2.4       0.60 +- 0.24
als          1.22 +- 0.15     4.5 +- 1.5       0.70 +- 0.15
=========== ================ ================ ================

Sources: control mean/CV/alpha (young adults), HD mean and alpha from Hausdorff et al.,
J. Appl. Physiol. 82:262 (1997) and 88:2045 (2000); PD from Hausdorff et al., Exp. Brain
Res. 1998 and Gassner et al. 2020; ALS from Hausdorff et al. 2000.  DATA.md gives ratios
where the papers give them: PD CV ~ 2 x control and HD CV ~ 3 x control are applied to our
control CV (the table's HD figure of 4.5 +- 1.6 % was measured against a lower control CV
in Hausdorff 1997; the ratio is kept so that HD stays the most variable group).  "Below
control" alpha for PD and ALS is set to 0.70 and "slower than control" ALS to 1.22 s,
values inside the ranges reported by those studies.  Alpha is clipped to [0.2, 0.98],
CV to >= 0.5 % and the mean stride to >= 0.7 s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .fgn import fgn


@dataclass(frozen=True)
class GaitGroup:
    """Distribution of one group's subject parameters: (mean, SD) of each."""

    mean_stride: tuple[float, float]
    cv_percent: tuple[float, float]
    alpha: tuple[float, float]


GAIT_GROUPS: dict[str, GaitGroup] = {
    "control": GaitGroup((1.03, 0.08), (2.8, 0.8), (0.87, 0.15)),
    "parkinson": GaitGroup((1.10, 0.10), (5.6, 1.6), (0.70, 0.15)),
    "huntington": GaitGroup((1.11, 0.15), (8.4, 2.4), (0.60, 0.24)),
    "als": GaitGroup((1.22, 0.15), (4.5, 1.5), (0.70, 0.15)),
}


@dataclass(frozen=True)
class GaitSubjects:
    """Simulated subjects.

    Attributes:
        series: float64 ``(S, n_strides)`` stride intervals in seconds.
        group: ``(S,)`` group names.
        mean_stride, cv, alpha: ``(S,)`` the parameters each subject drew.
    """

    series: np.ndarray
    group: np.ndarray
    mean_stride: np.ndarray
    cv: np.ndarray
    alpha: np.ndarray


def generate_gait_subjects(
    subjects_per_class: int,
    n_strides: int = 300,
    *,
    classes: tuple[str, ...] | list[str] = ("control", "parkinson", "huntington", "als"),
    seed: int = 0,
) -> GaitSubjects:
    """Simulate ``subjects_per_class`` subjects of each group, ``n_strides`` strides each.

    Args:
        subjects_per_class: subjects per group.
        n_strides: strides per subject (a 5-min walk has about 270-300).
        classes: groups, keys of :data:`GAIT_GROUPS`.
        seed: the only source of randomness.

    Returns:
        :class:`GaitSubjects`, subjects ordered by group.
    """
    unknown = [c for c in classes if c not in GAIT_GROUPS]
    if unknown:
        raise ValueError(f"unknown gait group(s) {unknown}; choose from {list(GAIT_GROUPS)}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    group = np.repeat(np.asarray(classes), subjects_per_class)
    params = [GAIT_GROUPS[g] for g in group]
    mean = np.array([rng.normal(*p.mean_stride) for p in params]).clip(0.7, None)
    cv = np.array([rng.normal(*p.cv_percent) for p in params]).clip(0.5, None) / 100.0
    alpha = np.array([rng.normal(*p.alpha) for p in params]).clip(0.2, 0.98)
    noise = fgn(alpha, n_strides, rng)
    noise = (noise - noise.mean(axis=1, keepdims=True)) / noise.std(axis=1, keepdims=True)
    series = mean[:, None] * (1.0 + cv[:, None] * noise)
    return GaitSubjects(series, group, mean, cv, alpha)
