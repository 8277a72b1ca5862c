"""Summary statistics of interval series (RR or stride intervals), NumPy only.

Used by the tests that check the synthetic generators against DATA.md and by
``lightdl data describe``.  Every function takes a 1-D array of intervals in seconds (or a
2-D array ``(N, L)``, one series per row, where noted) and returns floats / arrays.

Sources: HRV measures as in the Task Force of the ESC/NASPE (Circulation 93:1043, 1996);
the AF irregularity measures nRMSSD, turning-point ratio and Shannon entropy as in
Dash et al., Ann. Biomed. Eng. 37:1701 (2009); DFA as in Peng et al., Chaos 5:82 (1995).
"""

from __future__ import annotations

import numpy as np


def _rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x[None, :] if x.ndim == 1 else x


def _squeeze(v: np.ndarray, like: np.ndarray) -> np.ndarray | float:
    return float(v[0]) if np.ndim(like) == 1 else v


def sdnn(rr: np.ndarray) -> np.ndarray | float:
    """Standard deviation of the intervals (ddof=1), per row."""
    x = _rows(rr)
    return _squeeze(x.std(axis=1, ddof=1), rr)


def rmssd(rr: np.ndarray) -> np.ndarray | float:
    """Root mean square of successive differences, per row."""
    x = _rows(rr)
    return _squeeze(np.sqrt(np.mean(np.diff(x, axis=1) ** 2, axis=1)), rr)


def cv(rr: np.ndarray) -> np.ndarray | float:
    """Coefficient of variation SD/mean, per row."""
    x = _rows(rr)
    return _squeeze(x.std(axis=1, ddof=1) / x.mean(axis=1), rr)


def autocorr(rr: np.ndarray, lag: int = 1) -> np.ndarray | float:
    """Sample autocorrelation at ``lag``, per row."""
    x = _rows(rr)
    d = x - x.mean(axis=1, keepdims=True)
    num = np.sum(d[:, lag:] * d[:, :-lag], axis=1)
    return _squeeze(num / np.sum(d * d, axis=1), rr)


def _trim(x: np.ndarray, n_trim: int) -> np.ndarray:
    # Dash et al. remove the 8 largest and 8 smallest RRs of a 128-beat window (ectopics)
    if n_trim <= 0 or x.shape[1] <= 2 * n_trim + 2:
        return x
    return np.sort(x, axis=1)[:, n_trim:-n_trim]


def nrmssd(rr: np.ndarray, n_trim: int = 8) -> np.ndarray | float:
    """RMSSD / mean RR after dropping the ``n_trim`` largest and smallest intervals.

    The outliers are removed from the *differences'* series positions as in Dash et al. by
    masking the extreme intervals (their neighbours' differences are dropped too).
    """
    x = _rows(rr)
    out = np.empty(len(x))
    for i, row in enumerate(x):
        keep = np.ones(row.size, bool)
        if n_trim > 0 and row.size > 2 * n_trim + 2:
            order = np.argsort(row, kind="stable")
            keep[order[:n_trim]] = False
            keep[order[-n_trim:]] = False
        d = np.diff(row)[keep[1:] & keep[:-1]]
        out[i] = np.sqrt(np.mean(d**2)) / row[keep].mean()
    return _squeeze(out, rr)


def turning_point_ratio(rr: np.ndarray) -> np.ndarray | float:
    """Share of interior points that are a local maximum or minimum.

    For i.i.d. data the expected ratio is 2/3 (Dash et al. 2009 accept 0.54-0.77 as random).
    """
    x = _rows(rr)
    a, b, c = x[:, :-2], x[:, 1:-1], x[:, 2:]
    tp = ((b > a) & (b > c)) | ((b < a) & (b < c))
    return _squeeze(tp.sum(axis=1) / (x.shape[1] - 2), rr)


def shannon_entropy(rr: np.ndarray, n_bins: int = 16, n_trim: int = 8) -> np.ndarray | float:
    """Normalised Shannon entropy of the interval histogram (16 bins, Dash et al. 2009).

    ``-sum(p log p) / log(n_bins)`` after removing the ``n_trim`` extremes; in ``[0, 1]``.
    """
    x = _trim(_rows(rr), n_trim)
    out = np.empty(len(x))
    for i, row in enumerate(x):
        counts, _ = np.histogram(row, bins=n_bins)
        p = counts[counts > 0] / row.size
        out[i] = -np.sum(p * np.log(p)) / np.log(n_bins)
    return _squeeze(out, rr)


def dash_af(rr: np.ndarray) -> np.ndarray | bool:
    """Dash et al.'s AF rule on a window: nRMSSD > 0.1, TPR in 0.54-0.77 and SE > 0.7."""
    n = np.atleast_1d(nrmssd(rr))
    t = np.atleast_1d(turning_point_ratio(rr))
    s = np.atleast_1d(shannon_entropy(rr))
    ok = (n > 0.1) & (t >= 0.54) & (t <= 0.77) & (s > 0.7)
    return bool(ok[0]) if np.ndim(rr) == 1 else ok


def dfa_alpha(x: np.ndarray, min_box: int = 4, max_box: int | None = None) -> np.ndarray | float:
    """Detrended fluctuation analysis (DFA-1) scaling exponent, per row.

    Boxes from ``min_box`` to ``L // 4`` points, log-spaced; linear detrending in each
    non-overlapping box; alpha is the slope of log F(n) against log n.  For fractional
    Gaussian noise alpha estimates the Hurst exponent H.
    """
    rows = _rows(x)
    n_pts = rows.shape[1]
    max_box = max_box or n_pts // 4
    sizes = np.unique(np.round(np.logspace(np.log10(min_box), np.log10(max_box), 12)).astype(int))
    y = np.cumsum(rows - rows.mean(axis=1, keepdims=True), axis=1)
    flucts = []
    for n in sizes:
        k = n_pts // n
        seg = y[:, : k * n].reshape(len(rows), k, n)
        t = np.arange(n, dtype=np.float64)
        t_c = t - t.mean()
        # least-squares line per box, vectorised
        slope = np.sum((seg - seg.mean(axis=2, keepdims=True)) * t_c, axis=2) / np.sum(t_c**2)
        fit = seg.mean(axis=2, keepdims=True) + slope[..., None] * t_c
        flucts.append(np.sqrt(np.mean((seg - fit) ** 2, axis=(1, 2))))
    logf = np.log(np.stack(flucts, axis=1))
    logn = np.log(sizes)
    ln_c = logn - logn.mean()
    alpha = np.sum((logf - logf.mean(axis=1, keepdims=True)) * ln_c, axis=1) / np.sum(ln_c**2)
    return _squeeze(alpha, x)
