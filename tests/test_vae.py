"""VAE: shapes, sampling, fused vs torch.nn, the ELBO falling over a short run, the plots."""

from __future__ import annotations

import functools

import lightning as L
import pytest
import torch

from lightdl.data import DigitsDataModule
from lightdl.models import VAE
from lightdl.training import VAETask
from lightdl.training.vae_task import kl_to_standard_normal


@pytest.mark.parametrize("kind, shape", [("mlp", (1, 8, 8)), ("mlp", (64,)), ("conv", (1, 8, 8)),
                                         ("conv", (1, 28, 28))])
def test_shapes_and_sampling(kind, shape):
    vae = VAE(shape, latent_dim=3, hidden=[32, 16], kind=kind)
    x = torch.rand(5, *shape)
    logits, mu, logvar = vae(x)
    assert logits.shape == x.shape and mu.shape == logvar.shape == (5, 3)
    s = vae.sample(7, torch.Generator().manual_seed(0))
    assert s.shape == (7, *shape) and float(s.min()) >= 0 and float(s.max()) <= 1
    torch.testing.assert_close(vae.sample(2, torch.Generator().manual_seed(1)),
                               vae.sample(2, torch.Generator().manual_seed(1)))


def test_fused_and_unfused_vae_agree():
    a, b = VAE((1, 8, 8), fused=True).double().eval(), VAE((1, 8, 8), fused=False).double().eval()
    b.load_state_dict(a.state_dict())
    x = torch.rand(4, 1, 8, 8, dtype=torch.float64)
    for ya, yb in zip(a(x), b(x), strict=True):
        torch.testing.assert_close(ya, yb)


def test_kl_matches_torch_distributions():
    mu, logvar = torch.randn(6, 4), torch.randn(6, 4)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros(4), torch.ones(4))
    torch.testing.assert_close(kl_to_standard_normal(mu, logvar),
                               torch.distributions.kl_divergence(q, p).sum(-1))


def test_reparameterisation_carries_gradients_and_noise():
    mu = torch.zeros(1000, 2, requires_grad=True)
    logvar = torch.full((1000, 2), 2 * torch.log(torch.tensor(3.0)).item(), requires_grad=True)
    z = VAE.reparameterize(mu, logvar)
    assert abs(float(z.std()) - 3.0) < 0.3
    z.sum().backward()
    assert mu.grad is not None and logvar.grad is not None


def test_elbo_improves_over_a_short_run(tmp_path):
    dm = DigitsDataModule(batch_size=64, normalize=False)
    task = VAETask(VAE((1, 8, 8), latent_dim=2), optimizer=functools.partial(torch.optim.Adam, lr=2e-3))
    history = []

    class Record(L.Callback):
        def on_validation_epoch_end(self, trainer, pl_module):
            if not trainer.sanity_checking:
                history.append(float(trainer.callback_metrics["val/elbo"]))

    trainer = L.Trainer(max_epochs=6, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path, callbacks=[Record()])
    start = trainer.validate(task, dm, verbose=False)[0]["val/elbo"]
    history.clear()
    trainer.fit(task, dm)
    # nats per image: an untrained decoder is near 64 ln 2 = 44; training climbs well above
    assert history[-1] > start + 10 and history[-1] > history[0], (start, history)
    for png in ("reconstructions.png", "samples.png", "latent_space.png"):
        assert (tmp_path / png).is_file(), png


def test_vae_task_rejects_other_models():
    from lightdl.models import MLP

    with pytest.raises(TypeError, match="VAE"):
        VAETask(MLP(4, 2))
    with pytest.raises(ValueError, match="likelihood"):
        VAETask(VAE((4,), hidden=[4]), likelihood="poisson")
