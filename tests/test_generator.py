"""One-to-many: RNNGenerator (class -> series) and GeneratorTask, from the model's math to
`lightdl fit/predict --config configs/af_generator.yaml`."""

from __future__ import annotations

import json
import math
from functools import partial
from pathlib import Path

import lightning as L
import pytest
import torch

from lightdl.cli import main
from lightdl.data import RRIntervalDataModule
from lightdl.models import RNNGenerator
from lightdl.models.rnn_generator import expected_value, log_prob
from lightdl.training import GeneratorTask
from lightdl.training.generator_task import series_stats

CONFIG = str(Path(__file__).resolve().parent.parent / "configs" / "af_generator.yaml")
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
CELLS = [("lstm", True), ("lstm", False), ("gru", True), ("gru", False)]


def model(cell: str = "lstm", fused: bool = True, mixtures: int = 2, **kw) -> RNNGenerator:
    kw = {"input_shape": (2, 17), "num_classes": 3, "hidden_size": 12, "num_layers": 2} | kw
    return RNNGenerator(cell=cell, mixtures=mixtures, fused=fused, **kw)


def inputs(b: int = 5, c: int = 2, length: int = 17) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(b, c, length), torch.randint(0, 3, (b,))


@pytest.mark.parametrize("cell,fused", CELLS)
def test_teacher_forcing_is_causal(cell, fused):
    """Step t's prediction uses x[:, :, :t] only: changing x from step t on leaves the
    predictions of steps 0..t as they were, and changes those after."""
    m = model(cell, fused).eval()
    x, y = inputs()
    t = 9
    x2 = x.clone()
    x2[:, :, t:] += torch.randn_like(x2[:, :, t:])
    with torch.no_grad():
        a, b = m(x, y), m(x2, y)
    for pa, pb in zip(a, b, strict=True):
        assert pa.shape == (5, 2, 17, 2)
        torch.testing.assert_close(pa[:, :, : t + 1], pb[:, :, : t + 1])
        assert not torch.allclose(pa[:, :, t + 1:], pb[:, :, t + 1:])


@pytest.mark.parametrize("cell,fused", CELLS)
@pytest.mark.parametrize("mixtures", [1, 3])
def test_greedy_generation_is_what_teacher_forcing_predicts(cell, fused, mixtures):
    """generate(temperature=0) follows the most probable component's mean step by step; the
    one-call teacher-forced pass over that series must predict exactly it."""
    m = model(cell, fused, mixtures).eval()
    y = torch.randint(0, 3, (6,))
    g = m.generate(y, temperature=0.0)
    assert g.shape == (6, 2, 17)
    logits, mean, _ = m(g, y)
    chosen = mean.gather(-1, logits.argmax(-1, keepdim=True))[..., 0]
    torch.testing.assert_close(chosen, g, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_fused_and_torch_nn_models_agree(cell):
    fused, plain = model(cell, True), model(cell, False)
    plain.load_state_dict(fused.state_dict())
    assert fused.state_dict().keys() == plain.state_dict().keys()
    x, y = inputs()
    for pf, pp in zip(fused(x, y), plain(x, y), strict=True):
        torch.testing.assert_close(pf, pp, atol=1e-5, rtol=1e-5)
    fused.eval()
    plain.eval()
    seed = int(torch.randint(0, 2**31, ()))
    a = fused.generate(y, 11, generator=torch.Generator().manual_seed(seed))
    b = plain.generate(y, 11, generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_sampling_is_reproducible_and_scaled_by_temperature():
    m = model().eval()
    y = torch.randint(0, 3, (64,))
    a = m.generate(y, 20, generator=torch.Generator().manual_seed(1))
    b = m.generate(y, 20, generator=torch.Generator().manual_seed(1))
    c = m.generate(y, 20, generator=torch.Generator().manual_seed(2))
    assert a.shape == (64, 2, 20) and torch.equal(a, b) and not torch.equal(a, c)
    # Step 0 depends on the class only: its spread is the noise, scaled by the temperature.
    cold = m.generate(y, 1, temperature=0.1, generator=torch.Generator().manual_seed(1))
    greedy = m.generate(y, 1, temperature=0.0)
    assert (cold - greedy).abs().max() < 0.5 * (a[..., :1] - greedy).abs().max()


def test_components_are_drawn_by_their_weights():
    """A head that ignores its input: weights 0.2 / 0.8 on components at -10 and +10 with a
    tiny spread, so each value shows which component it came from."""
    m = model(mixtures=2, num_layers=1).eval()
    with torch.no_grad():
        m.head.linear.weight.zero_()
        # Rows: [logits | means | logvars], each (channel, component).
        m.head.linear.bias.copy_(torch.tensor([0.0, math.log(4.0)] * 2 + [-10.0, 10.0] * 2
                                              + [-9.0, -9.0] * 2))
    y = torch.randint(0, 3, (4000,))
    v = m.generate(y, 2, generator=torch.Generator().manual_seed(0))
    assert ((v.abs() - 10).abs() < 0.1).all()
    share = (v > 0).double().mean()
    assert abs(share - 0.8) < 0.02, share  # 8000 draws: SD 0.0045
    assert (m.generate(y[:5], 2, temperature=0.0) == 10).all()  # the most probable one


def test_empty_batch():
    m = model().eval()
    x, y = inputs(b=0)
    assert all(p.shape == (0, 2, 17, 2) for p in m(x, y))
    assert m.generate(y).shape == (0, 2, 17)


def test_log_prob_is_the_mixture_density():
    """Against the density written out: log sum_k softmax(logits)_k N(x; mean_k, var_k)."""
    b, c, length, k = 3, 2, 7, 4
    logits, mean = torch.randn(b, c, length, k), torch.randn(b, c, length, k)
    logvar, x = torch.randn(b, c, length, k).clamp(-2, 2), torch.randn(b, c, length)
    var = logvar.exp()
    comp = -0.5 * ((x[..., None] - mean) ** 2 / var + logvar + math.log(2 * math.pi))
    want = torch.logsumexp(logits.log_softmax(-1) + comp, -1)
    torch.testing.assert_close(log_prob((logits, mean, logvar), x), want)
    torch.testing.assert_close(log_prob((logits[..., :1], mean[..., :1], logvar[..., :1]), x),
                               comp[..., 0])
    torch.testing.assert_close(expected_value((logits, mean, logvar)),
                               (logits.softmax(-1) * mean).sum(-1))


def test_every_parameter_learns():
    m = model(mixtures=3)
    x, y = inputs()
    (-log_prob(m(x, y), x).mean()).backward()
    for name, p in m.named_parameters():
        if name.startswith("embed"):  # only the rows of the classes in y
            assert p.grad[y].abs().sum() > 0, name
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_padding_past_a_series_end_does_not_change_the_loss():
    """(x, lengths, y) batches: the loss is the mean over the valid values only, and being
    causal the model's predictions there do not see the padding."""
    m = model(mixtures=1, input_shape=(2, None))
    task = GeneratorTask(m)
    x, y = inputs(b=4, length=12)
    lengths = torch.tensor([12, 5, 9, 1])
    for i, n in enumerate(lengths):
        x[i, :, n:] = 0
    loss = task._shared((x, lengths, y), "train")
    x2 = x.clone()
    for i, n in enumerate(lengths):
        x2[i, :, n:] = torch.randn(2, 12 - n)
    torch.testing.assert_close(task._shared((x2, lengths, y), "train"), loss)
    with torch.no_grad():
        nll = [-log_prob(m(x[i:i + 1, :, :n], y[i:i + 1]), x[i:i + 1, :, :n])
               for i, n in enumerate(lengths)]
    torch.testing.assert_close(loss.detach(), torch.cat([v.flatten() for v in nll]).mean())


def test_bad_arguments_are_clear_errors():
    m = model()
    x, y = inputs()
    with pytest.raises(ValueError, match="classes outside 0..2"):
        m(x, torch.tensor([0, 1, 2, 3, 0]))
    with pytest.raises(ValueError, match="y must be class indices"):
        m(x, y.float())
    with pytest.raises(ValueError, match=r"x must be \(B, 2, L\)"):
        m(torch.randn(5, 3, 17), y)
    with pytest.raises(ValueError, match="mixtures must be >= 1|mixtures"):
        RNNGenerator((1, 10), mixtures=0)
    with pytest.raises(ValueError, match="give length="):
        RNNGenerator((1, None)).generate(y)
    with pytest.raises(ValueError, match="temperature"):
        m.generate(y, temperature=-1)
    with pytest.raises(TypeError, match="GeneratorTask trains a lightdl.models.RNNGenerator"):
        GeneratorTask(torch.nn.Linear(2, 2))


def test_it_learns_that_af_is_irregular(tmp_path):
    """A short fit on synthetic RR windows: the series it generates for AF vary from beat
    to beat (RMSSD) far more than those for non-AF, as real AF does."""
    L.seed_everything(0)
    dm = RRIntervalDataModule(n_records=80, batch_size=64)
    task = GeneratorTask(RNNGenerator((1, 60), 2, hidden_size=32, mixtures=3),
                         optimizer=partial(torch.optim.Adam, lr=3e-3),
                         class_names=dm.class_names)
    trainer = L.Trainer(max_epochs=6, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path)
    trainer.fit(task, dm)
    plots = next(c for c in trainer.callbacks if type(c).__name__ == "GeneratorPlots")
    stats = plots.stats
    assert (tmp_path / "generated_series.png").is_file()
    # Untrained: 1.03-1.09; after these 6 epochs: 1.65 (two data seeds).
    assert stats["AF"]["generated"]["rmssd"] > 1.3 * stats["non-AF"]["generated"]["rmssd"], stats
    gen = task.model.generate(torch.tensor([0] * 200 + [1] * 200), 60,
                              generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(gen).all()
    assert series_stats(gen[200:])["rmssd"] > 1.3 * series_stats(gen[:200])["rmssd"]


def test_cli_fit_and_predict(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    short = ["--trainer.max_epochs", "2", "--data.init_args.n_records", "40", *QUIET]
    assert main(["fit", "--config", CONFIG, *short]) == 0
    out = capsys.readouterr().out
    d = tmp_path / "runs" / "af_generator" / "version_0"
    assert "plots: generated_series.png, learning_curves.png" in out
    assert "generation_stats.json" in out
    stats = json.loads((d / "generation_stats.json").read_text())
    assert set(stats) == {"non-AF", "AF"}
    assert set(stats["AF"]) == {"real", "generated"}
    assert {"n", "mean", "sd", "rmssd"} <= set(stats["AF"]["generated"])
    # In seconds (denormalised): RR intervals of a resting heart, not z-scores.
    assert 0.3 < stats["non-AF"]["generated"]["mean"] < 2.0
    assert "test/loss" in json.loads((d / "test_metrics.json").read_text())

    assert main(["predict", "--config", CONFIG, "--ckpt_path",
                 str(d / "checkpoints" / "last.ckpt"), *short]) == 0
    csv = next((tmp_path / "runs" / "af_generator").glob("version_*/predictions.csv"))
    lines = csv.read_text().splitlines()
    assert lines[0] == "index,class," + ",".join(f"t{t}" for t in range(60))
    dm = RRIntervalDataModule(n_records=40)
    dm.setup()
    assert len(lines) == 1 + len(dm.test_dataset)
    assert {line.split(",")[1] for line in lines[1:]} <= {"non-AF", "AF"}
