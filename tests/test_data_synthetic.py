"""Synthetic generators against the statistics DATA.md gives (with real tolerances)."""

from __future__ import annotations

import numpy as np
import pytest

from lightdl.data import stats
from lightdl.data.synthetic import GAIT_GROUPS, fgn, generate_gait_subjects, generate_rr_records


@pytest.fixture(scope="module")
def sinus_records():
    # clean sinus rhythm only: the Nunan et al. (2010) norms are for 5-min NSR recordings
    return generate_rr_records(
        120, 300, seed=3, af_fraction=0, paroxysmal_fraction=0, ectopic_fraction=0
    )


@pytest.fixture(scope="module")
def mixed_records():
    return generate_rr_records(120, 512, seed=5)


def test_nsr_matches_nunan_norms(sinus_records):
    rr = np.stack([r.rr for r in sinus_records])
    mean_rr = rr.mean(axis=1) * 1000
    sdnn = stats.sdnn(rr) * 1000
    rmssd = stats.rmssd(rr) * 1000
    # Nunan et al. 2010: mean RR 926 +- 90 ms, SDNN 50 +- 16 ms, RMSSD 42 +- 15 ms
    assert 880 <= mean_rr.mean() <= 975
    assert 50 <= mean_rr.std() <= 150
    assert 34 <= np.median(sdnn) <= 66
    assert 27 <= np.median(rmssd) <= 57
    assert not any(r.af.any() or r.ectopic.any() for r in sinus_records)


def test_af_windows_are_irregular_and_nsr_windows_are_not(mixed_records):
    af = np.concatenate([r.rr.reshape(-1, 128) for r in mixed_records if r.kind == "af"])
    nsr = np.concatenate([r.rr.reshape(-1, 128) for r in mixed_records if r.kind == "sinus"])
    assert len(af) > 100 and len(nsr) > 100
    assert abs(np.mean(stats.autocorr(af))) < 0.25  # near-white beat to beat
    assert np.median(stats.nrmssd(af)) > 0.1
    tpr = stats.turning_point_ratio(af)
    assert 0.54 <= np.median(tpr) <= 0.77
    assert np.median(stats.shannon_entropy(af)) > 0.7
    # Dash et al. 2009's rule flags AF windows (their sensitivity on MIT-BIH AF was ~94%;
    # here 0.88-0.95 over seeds: slow, narrow-tailed AF records sit under nRMSSD 0.1)
    assert np.mean(stats.dash_af(af)) >= 0.85
    assert np.mean(stats.dash_af(nsr)) <= 0.1  # ... and not sinus windows (with ectopics)
    assert np.median(stats.nrmssd(nsr)) < 0.1
    mean_af = np.array([r.rr.mean() for r in mixed_records if r.kind == "af"])
    assert 0.64 <= mean_af.mean() <= 0.84  # Alcaraz et al. 2008: 740 +- 100 ms
    assert max(r.rr.max() for r in mixed_records if r.kind == "af") <= 1.8
    # AF is faster than sinus rhythm and its CV stays roughly constant across records
    cv_af = stats.cv(np.stack([r.rr for r in mixed_records if r.kind == "af"]))
    assert np.std(cv_af) < 0.1


def test_ectopic_share_and_labels(mixed_records):
    sinus = [r for r in mixed_records if r.kind == "sinus"]
    share = np.mean(np.concatenate([r.ectopic for r in sinus]))
    assert 0.03 <= share <= 0.07  # ectopic_fraction default 0.05
    for r in mixed_records:
        assert r.rr.shape == r.af.shape == r.ectopic.shape == (512,)
        assert not (r.af & r.ectopic).any()
        assert (r.rr > 0.2).all()
        if r.kind == "sinus":
            assert not r.af.any()
        elif r.kind == "af":
            assert r.af.all()
    par = [r for r in mixed_records if r.kind == "paroxysmal"]
    assert par
    assert np.mean([0 < r.af.mean() < 1 for r in par]) > 0.5
    # ectopic beats are premature: shorter than the preceding interval
    pre = np.concatenate([r.rr[1:][r.ectopic[1:]] / r.rr[:-1][r.ectopic[1:]] for r in sinus])
    assert np.median(pre) < 0.85


def test_detection_noise_merges_and_splits():
    clean = generate_rr_records(20, 300, seed=1, detection_noise=0.0)
    noisy = generate_rr_records(20, 300, seed=1, detection_noise=0.1)
    assert all(r.rr.shape == (300,) for r in noisy)
    r_clean = np.concatenate([r.rr for r in clean])
    r_noisy = np.concatenate([r.rr for r in noisy])
    # merged beats make long intervals, extra beats short ones
    assert (r_noisy > 1.5 * np.median(r_clean)).mean() > (r_clean > 1.5 * np.median(r_clean)).mean()
    assert (r_noisy < 0.5 * np.median(r_clean)).mean() > (r_clean < 0.5 * np.median(r_clean)).mean()


def test_rr_seeds_reproduce_and_differ():
    a = generate_rr_records(8, 200, seed=11)
    b = generate_rr_records(8, 200, seed=11)
    c = generate_rr_records(8, 200, seed=12)
    assert all(np.array_equal(x.rr, y.rr) and x.kind == y.kind for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x.rr, y.rr) for x, y in zip(a, c, strict=True))


def test_fgn_has_the_fgn_autocovariance():
    rng = np.random.default_rng(0)
    for h in (0.3, 0.5, 0.85):
        x = fgn(np.full(1500, h), 64, rng)
        r1 = np.mean(x[:, 1:] * x[:, :-1])
        assert abs(x.var() - 1) < 0.05
        assert abs(r1 - 0.5 * (2 ** (2 * h) - 2)) < 0.04
    with pytest.raises(ValueError):
        fgn(1.0, 10, rng)


def test_gait_groups_match_data_md():
    g = generate_gait_subjects(120, 300, seed=2)
    res = {}
    for name, grp in GAIT_GROUPS.items():
        x = g.series[g.group == name]
        mean, cv, alpha = x.mean(axis=1), stats.cv(x), stats.dfa_alpha(x)
        res[name] = (cv.mean(), alpha.mean())
        # the group distributions of DATA.md (module docstring of synthetic.stride)
        assert abs(mean.mean() - grp.mean_stride[0]) < 0.03, name
        assert abs(mean.std() - grp.mean_stride[1]) < 0.04, name
        assert abs(cv.mean() * 100 - grp.cv_percent[0]) < 0.5, name
        assert abs(alpha.mean() - grp.alpha[0]) < 0.07, name
    # DATA.md's table: control 1.03 +- 0.08 s, CV 2.8 +- 0.8 %, alpha 0.87 (young) / 0.68-0.9
    c = g.series[g.group == "control"]
    assert 1.0 <= c.mean() <= 1.06 and 0.024 <= stats.cv(c).mean() <= 0.032
    # orderings the table states: PD ~2x and HD ~3x control CV, ALS above control;
    # alpha below control for every disease group
    assert res["control"][0] < res["als"][0] < res["parkinson"][0] < res["huntington"][0]
    assert 1.6 < res["parkinson"][0] / res["control"][0] < 2.4
    assert 2.5 < res["huntington"][0] / res["control"][0] < 3.5
    assert all(res[k][1] < res["control"][1] - 0.1 for k in ("parkinson", "huntington", "als"))
    hd_alpha = stats.dfa_alpha(g.series[g.group == "huntington"]).mean()
    assert 0.5 <= hd_alpha <= 0.7  # 0.60 +- 0.24


def test_gait_seeds_and_classes():
    a = generate_gait_subjects(3, 100, seed=4, classes=["control", "als"])
    b = generate_gait_subjects(3, 100, seed=4, classes=["control", "als"])
    c = generate_gait_subjects(3, 100, seed=5, classes=["control", "als"])
    assert np.array_equal(a.series, b.series) and not np.array_equal(a.series, c.series)
    assert a.series.shape == (6, 100) and list(a.group) == ["control"] * 3 + ["als"] * 3
    with pytest.raises(ValueError, match="unknown gait group"):
        generate_gait_subjects(2, 50, classes=["flu"])


def test_dfa_separates_white_and_correlated_noise():
    rng = np.random.default_rng(1)
    white = stats.dfa_alpha(rng.standard_normal((50, 1024))).mean()
    brown_ish = stats.dfa_alpha(fgn(np.full(50, 0.9), 1024, rng)).mean()
    assert abs(white - 0.5) < 0.05 and abs(brown_ish - 0.9) < 0.07
