"""Synthetic RR-interval records: sinus rhythm (with HRV), ectopic beats, and AF.

Every function is a pure function of its arguments and a ``numpy.random.Generator``; the
public entry point :func:`generate_rr_records` is a pure function of ``seed``.

Models and parameters (see DATA.md, section 1):

* **Normal sinus rhythm** - the ECGSYN RR process (McSharry et al., IEEE TBME 50:289,
  2003): a power spectrum made of two Gaussians, LF at 0.1 Hz (SD 0.01 Hz, weight LF/HF)
  and HF (respiratory sinus arrhythmia) at the respiratory rate (SD 0.01 Hz, weight 1),
  random phases, inverse FFT, rescaled to the record's mean RR and RR SD
  (RR SD in s = 60 * hr_std / hr_mean**2).  Per record: mean HR U(50, 80) bpm,
  LF/HF U(0.5, 2), respiratory rate U(0.2, 0.5) Hz (simECG ranges, Bachi et al. 2023).
  Deviations, both to land on the healthy 5-min norms of Nunan et al. (PACE 33:1407, 2010;
  mean RR 926 +- 90 ms, SDNN 50 +- 16 ms, RMSSD 42 +- 15 ms): HR SD is drawn from
  U(2.0, 4.0) bpm instead of simECG's 0.5-3 bpm (which gives SDNN ~ 25 ms, half the norm),
  and the process is sampled at 4 Hz instead of ECGSYN's 1 Hz so that a 0.5 Hz respiratory
  component is not at the Nyquist frequency.  The RR series is read at the beat times
  (RR_k = rr(t_k), t_{k+1} = t_k + RR_k) as in ECGSYN.  Measured on 400 clean 300-beat
  records: mean RR 928 +- 125 ms, SDNN 43 +- 15 ms, RMSSD 52 +- 24 ms (median 47) - RMSSD
  sits above the norm because respiration up to 0.5 Hz puts much HF power at beat-to-beat
  scale and the model has no VLF power (which adds to SDNN only).
* **Ectopic beats** (simECG rules, Bachi et al. 2023): atrial premature beats with
  RR = beta * RR_sinus, beta ~ U(0.55, 0.95), followed by no pause, a delayed reset
  (next RR x U(1.10, 1.35)) or a full compensatory pause (next RR = 2 RR - RR_apb);
  ventricular premature beats, beta ~ U(0.55, 0.90), full compensatory pause; interpolated
  beats, beta ~ U(0.45, 0.55) (the sinus interval is split in two); bigeminy / trigeminy
  runs, beta ~ U(0.60, 0.75) +- 0.05 per beat, run length log-normal with median 8 beats.
* **AF** - the shifted-exponential model of Hennig et al. (Physiol. Meas. 27:1, 2006):
  RR = shift + Exp(decay), decay U(3, 12) Hz, combined with the AV-node refractoriness of
  Corino et al. (IEEE TBME 58:3386, 2011; simECG), whose refractory period grows with the
  previous interval (tau = 0.15 RR + const): RR_k = 0.15 RR_{k-1} + b + E_k,
  E_k ~ Exp(decay), with ``b`` set so that the record's mean RR is N(740, 100) ms
  (Alcaraz et al. 2008; clipped to 450-1050 ms); E is truncated so that RR <= 1.8 s.
  The result is irregularly irregular with a weak (about 0.15) lag-1 autocorrelation and a
  roughly constant CV, and passes Dash et al.'s (2009) AF criteria on 128-beat windows.
* **Detection noise** (optional): a missed beat merges two successive RRs, an extra
  detection splits one RR in two (split point U(0.3, 0.7)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._progress import Progress

RECORD_KINDS = ("sinus", "af", "paroxysmal")

_FS_RR = 4.0  # Hz, sampling of the continuous RR process
_AF_AR = 0.15  # refractory-period dependence on the previous RR (Corino et al. 2011)
_RR_MAX = 1.8  # s, longer AF intervals are rejected (DATA.md)


@dataclass(frozen=True)
class RRRecord:
    """One simulated recording.

    Attributes:
        rr: float64 ``(n,)`` RR intervals in seconds.
        af: bool ``(n,)`` True where the beat ending the interval is in AF.
        ectopic: bool ``(n,)`` True for premature (ectopic) beats.
        kind: ``"sinus"``, ``"af"`` (persistent) or ``"paroxysmal"`` (AF episodes).
    """

    rr: np.ndarray
    af: np.ndarray
    ectopic: np.ndarray
    kind: str


def sinus_rr(
    n_beats: int,
    rng: np.random.Generator,
    *,
    hr_mean: np.ndarray,
    hr_std: np.ndarray,
    lf_hf: np.ndarray,
    resp_rate: np.ndarray,
) -> np.ndarray:
    """ECGSYN sinus RR intervals for ``R`` records at once.

    Args:
        n_beats: beats per record.
        rng: random generator (phases).
        hr_mean, hr_std, lf_hf, resp_rate: shape ``(R,)``; bpm, bpm, ratio, Hz.

    Returns:
        float64 ``(R, n_beats)`` RR intervals in seconds.
    """
    hr_mean = np.asarray(hr_mean, dtype=np.float64)
    n_rec = hr_mean.size
    rr_mean = 60.0 / hr_mean
    rr_std = 60.0 * np.asarray(hr_std) / hr_mean**2
    duration = n_beats * 60.0 / 40.0 + 10.0  # enough seconds even at 40 bpm
    n_t = int(2 ** np.ceil(np.log2(duration * _FS_RR)))
    f = np.fft.rfftfreq(n_t, d=1.0 / _FS_RR)
    c = 0.01  # Hz, width of both spectral peaks (McSharry et al. 2003)

    def peak(f0: np.ndarray) -> np.ndarray:
        return np.exp(-((f[None, :] - f0[:, None]) ** 2) / (2 * c**2)) / np.sqrt(2 * np.pi * c**2)

    power = np.asarray(lf_hf)[:, None] * peak(np.full(n_rec, 0.1)) + peak(np.asarray(resp_rate))
    phases = rng.uniform(0.0, 2 * np.pi, size=power.shape)
    proc = np.fft.irfft(np.sqrt(power) * np.exp(1j * phases), n=n_t, axis=1)
    proc = (proc - proc.mean(axis=1, keepdims=True)) / proc.std(axis=1, keepdims=True)
    proc = rr_mean[:, None] + rr_std[:, None] * proc

    # beat times: fixed point of t_{k+1} = t_k + rr(t_k), vectorised over records
    rr = np.repeat(rr_mean[:, None], n_beats, axis=1)
    rows = np.arange(n_rec)[:, None]
    for _ in range(6):  # rr varies slowly, a few sweeps converge far below 1 ms
        t = np.concatenate([np.zeros((n_rec, 1)), np.cumsum(rr[:, :-1], axis=1)], axis=1)
        pos = t * _FS_RR
        i0 = np.minimum(pos.astype(np.int64), n_t - 2)
        frac = pos - i0
        rr = (1 - frac) * proc[rows, i0] + frac * proc[rows, i0 + 1]
    return rr


def insert_ectopics(
    rr: np.ndarray, rate: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Insert ectopic events into one sinus RR series (simECG rules, see module docstring).

    Args:
        rr: float64 ``(n,)`` sinus RR intervals (s).
        rate: probability per beat that an ectopic event starts there.
        rng: random generator.

    Returns:
        ``(rr_out, ectopic)`` each ``(n,)``: the new series (truncated to ``n``) and a mask of
        premature beats.
    """
    n = rr.size
    starts = np.flatnonzero(rng.random(n) < rate)
    out_rr: list[np.ndarray] = []
    out_e: list[np.ndarray] = []
    pos = 0

    def emit(values: list[float] | np.ndarray, ect: list[bool] | np.ndarray) -> None:
        out_rr.append(np.asarray(values, dtype=np.float64))
        out_e.append(np.asarray(ect, dtype=bool))

    for s in starts:
        if s < pos or s + 2 >= n:
            continue
        emit(rr[pos:s], np.zeros(s - pos, bool))
        u = rng.random()
        r0 = rr[s]
        if u < 0.45:  # atrial premature beat
            beta = rng.uniform(0.55, 0.95)
            mode = rng.integers(3)
            nxt = (rr[s + 1], rr[s + 1] * rng.uniform(1.10, 1.35), 2 * r0 - beta * r0)[mode]
            emit([beta * r0, nxt], [True, False])
            pos = s + 2
        elif u < 0.75:  # ventricular premature beat, full compensatory pause
            beta = rng.uniform(0.55, 0.90)
            emit([beta * r0, (2 - beta) * r0], [True, False])
            pos = s + 2
        elif u < 0.85:  # interpolated beat: one sinus interval split in two
            beta = rng.uniform(0.45, 0.55)
            emit([beta * r0, (1 - beta) * r0], [True, False])
            pos = s + 1
        else:  # bigeminy (period 2) or trigeminy (period 3) run
            period = 2 if rng.random() < 0.5 else 3
            run_beats = rng.lognormal(np.log(8.0), 0.5)
            cycles = max(2, int(round(run_beats / period)))
            cycles = min(cycles, (n - s - 1) // period)
            base_beta = rng.uniform(0.60, 0.75)
            for cyc in range(cycles):
                b0 = s + cyc * period
                emit(rr[b0 : b0 + period - 2], np.zeros(period - 2, bool))
                r_c = rr[b0 + period - 2]
                beta = base_beta + rng.uniform(-0.05, 0.05)
                emit([beta * r_c, (2 - beta) * r_c], [True, False])
            pos = s + cycles * period
    emit(rr[pos:], np.zeros(n - pos, bool))
    return np.concatenate(out_rr)[:n], np.concatenate(out_e)[:n]


def af_rr(
    n_beats: int, rng: np.random.Generator, *, rr_mean: np.ndarray, decay: np.ndarray
) -> np.ndarray:
    """AF RR intervals for ``R`` records (Hennig et al. 2006 + Corino et al. 2011).

    Args:
        n_beats: beats per record.
        rng: random generator.
        rr_mean: ``(R,)`` target mean RR (s).
        decay: ``(R,)`` rate of the exponential tail (Hz).

    Returns:
        float64 ``(R, n_beats)`` in seconds, every value <= 1.8 s.
    """
    rr_mean = np.asarray(rr_mean, dtype=np.float64)[:, None]
    decay = np.asarray(decay, dtype=np.float64)[:, None]
    # stationary mean of RR_k = a RR_{k-1} + b + E_k is (b + 1/decay) / (1 - a)
    b = np.maximum(rr_mean * (1 - _AF_AR) - 1.0 / decay, 0.2)
    e_max = _RR_MAX * (1 - _AF_AR) - b  # keeps RR <= 1.8 s by induction
    u = rng.random((rr_mean.shape[0], n_beats))
    e = -np.log1p(-u * (1 - np.exp(-decay * e_max))) / decay  # truncated exponential
    x = b + e
    rr = np.empty_like(x)
    prev = rr_mean[:, 0]  # start in the stationary mean
    for k in range(n_beats):  # AR(1) recursion, vectorised over records
        prev = _AF_AR * prev + x[:, k]
        rr[:, k] = prev
    return rr


def add_detection_noise(
    rr: np.ndarray, labels: list[np.ndarray], p: float, rng: np.random.Generator
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Missed beats (merge two RRs) and extra detections (split one), each with prob. ``p/2``.

    ``labels`` are per-beat boolean masks carried along (merged beats OR their flags).
    """
    if p <= 0:
        return rr, labels
    n = rr.size
    miss = rng.random(n - 1) < p / 2
    miss[1:] &= ~miss[:-1]  # no chains of merges
    idx = np.flatnonzero(miss)
    rr = rr.copy()
    rr[idx] += rr[idx + 1]
    labels = [lab.copy() for lab in labels]
    for lab in labels:
        lab[idx] |= lab[idx + 1]
    keep = np.ones(n, bool)
    keep[idx + 1] = False
    rr = rr[keep]
    labels = [lab[keep] for lab in labels]
    extra = np.flatnonzero(rng.random(rr.size) < p / 2)
    split = rng.uniform(0.3, 0.7, extra.size)
    first = rr[extra] * split
    rr[extra] -= first
    rr = np.insert(rr, extra, first)
    labels = [np.insert(lab, extra, lab[extra]) for lab in labels]
    return rr, labels


def generate_rr_records(
    n_records: int,
    n_beats: int = 600,
    *,
    seed: int = 0,
    af_fraction: float = 0.35,
    paroxysmal_fraction: float = 0.2,
    ectopic_fraction: float = 0.05,
    detection_noise: float = 0.0,
) -> list[RRRecord]:
    """Simulate ``n_records`` recordings of ``n_beats`` RR intervals each.

    Args:
        n_records: number of records (simulated subjects).
        n_beats: beats per record (600 beats is about 10 minutes).
        seed: the only source of randomness; equal seeds give identical records.
        af_fraction: share of records in persistent AF.
        paroxysmal_fraction: share of records that switch between sinus rhythm and AF
            (episodes of U(120, 480) beats); the rest are sinus rhythm.
        ectopic_fraction: mean share of sinus beats that are premature; each record draws
            its own rate from U(0, 2 x this), so some records are clean and some heavy.
        detection_noise: per-beat probability of a missed or extra beat detection.

    Returns:
        List of :class:`RRRecord`; the kinds are assigned in a fixed proportion and
        shuffled, so every kind appears whenever ``n_records`` is large enough.
    """
    if not 0 <= af_fraction + paroxysmal_fraction <= 1:
        raise ValueError("af_fraction + paroxysmal_fraction must lie in [0, 1]")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 4242]))
    n_af = int(round(n_records * af_fraction))
    n_px = int(round(n_records * paroxysmal_fraction))
    kinds = np.array(["af"] * n_af + ["paroxysmal"] * n_px + ["sinus"] * (n_records - n_af - n_px))
    kinds = kinds[rng.permutation(n_records)]
    n_gen = n_beats + n_beats // 10 + 16  # margin for merged beats (detection noise)

    hr_mean = rng.uniform(50, 80, n_records)
    hr_std = rng.uniform(2.0, 4.0, n_records)
    lf_hf = rng.uniform(0.5, 2.0, n_records)
    resp_rate = rng.uniform(0.2, 0.5, n_records)
    af_mean = np.clip(rng.normal(0.74, 0.10, n_records), 0.45, 1.05)
    af_decay = rng.uniform(3.0, 12.0, n_records)
    # ectopics ~1.4 premature beats per event on average (runs count several)
    rates = rng.uniform(0, 2 * ectopic_fraction, n_records) / 1.4
    chunk = max(1, 2**21 // (n_gen * 8))  # bounds the FFT work arrays to ~100 MB
    records = []
    with Progress("generating RR records", n_records) as progress:
        for c0 in range(0, n_records, chunk):
            part = slice(c0, min(c0 + chunk, n_records))
            sinus = sinus_rr(
                n_gen,
                rng,
                hr_mean=hr_mean[part],
                hr_std=hr_std[part],
                lf_hf=lf_hf[part],
                resp_rate=resp_rate[part],
            )
            af = af_rr(n_gen, rng, rr_mean=af_mean[part], decay=af_decay[part])
            for j, r in enumerate(range(part.start, part.stop)):
                progress.update(r)
                records.append(
                    _assemble(sinus[j], af[j], kinds[r], rates[r], detection_noise, n_beats, rng)
                )
    return records


def _assemble(
    sinus: np.ndarray,
    af: np.ndarray,
    kind: str,
    rate: float,
    detection_noise: float,
    n_beats: int,
    rng: np.random.Generator,
) -> RRRecord:
    """One record from its sinus and AF series: ectopics, AF episodes, detection noise."""
    n_gen = sinus.size
    rr_s, ect = insert_ectopics(sinus, rate, rng)
    if kind == "af":
        mask = np.ones(n_gen, bool)
    elif kind == "paroxysmal":
        lengths = rng.integers(120, 481, size=n_gen // 120 + 2)
        state = np.arange(lengths.size) % 2 == (rng.random() < 0.5)
        mask = np.repeat(state, lengths)[:n_gen]
    else:
        mask = np.zeros(n_gen, bool)
    rr = np.where(mask, af, rr_s)
    ect = ect & ~mask
    rr, (mask, ect) = add_detection_noise(rr, [mask, ect], detection_noise, rng)
    return RRRecord(rr[:n_beats], mask[:n_beats], ect[:n_beats], str(kind))


def window_labels(af: np.ndarray, rule: str) -> np.ndarray:
    """Window label from per-beat AF flags ``(..., window)``.

    ``"majority"``: AF when more than half the beats are AF; ``"any"``: AF when at least
    one beat is.
    """
    if rule == "majority":
        return (af.mean(axis=-1) > 0.5).astype(np.int64)
    if rule == "any":
        return af.any(axis=-1).astype(np.int64)
    raise ValueError(f"label_rule must be 'any' or 'majority', got {rule!r}")


def sliding_windows(x: np.ndarray, window: int, stride: int) -> np.ndarray:
    """Windows ``(n_windows, window)`` of a 1-D array, hop ``stride`` (view, no copy)."""
    if x.shape[-1] < window:
        return np.empty((0, window), dtype=x.dtype)
    return np.lib.stride_tricks.sliding_window_view(x, window)[::stride]
