"""The objective and estimator registry: identities, unbiasedness where it holds, bias where it does not."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import norm

from iwae import objectives
from iwae.bounds import elbo, iwae_bound
from iwae.config import TrainConfig
from iwae.model import IWAEModel, ModelConfig, initialise
from iwae.snr import gradients
from iwae.train import train


def model_1layer(seed=0):
    bias = torch.randn(784, generator=torch.Generator().manual_seed(seed + 50))
    return initialise(IWAEModel(ModelConfig(1)), "seeded", bias, seed=seed)


def x_batch(b=2, seed=1):
    return (torch.rand(b, 784, generator=torch.Generator().manual_seed(seed)) < 0.3).float()


def values_and_grads(name, model, x, noise):
    obj = objectives.get(name)
    log_w = model.log_weights(x, noise[0].shape[0], noise=noise, q_fixed=obj.q_fixed)
    value = obj.value(log_w).sum()
    return value, torch.autograd.grad(value, list(model.parameters()))


@pytest.mark.parametrize("a, b, k", [("miwae_m1", "iwae", 6), ("miwae_m6", "vae", 6), ("ciwae_b1", "vae", 5),
                                     ("ciwae_b0", "iwae", 5), ("ciwae_b1.0", "vae", 5)])
def test_registry_identities_values_and_gradients(a, b, k):
    model, x = model_1layer(), x_batch()
    noise = [torch.randn(k, 2, 50, generator=torch.Generator().manual_seed(3))]
    va, ga = values_and_grads(a, model, x, noise)
    vb, gb = values_and_grads(b, model, x, noise)
    assert float(va.detach()) == pytest.approx(float(vb.detach()), rel=1e-6)
    for u, v in zip(ga, gb):
        assert torch.allclose(u, v, rtol=1e-4, atol=1e-5)


def test_miwae_is_the_mean_of_group_bounds():
    log_w = torch.randn(2, 12, 3, dtype=torch.float64)  # [members, M*K, B]
    expected = torch.stack([iwae_bound(log_w[:, 4 * i: 4 * i + 4]) for i in range(3)]).mean(0)
    assert torch.allclose(objectives.objective("miwae_m3", log_w), expected)
    assert torch.allclose(objectives.objective("ciwae_b0.25", log_w), 0.25 * elbo(log_w) + 0.75 * iwae_bound(log_w))


def test_bad_names_and_combinations_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="unknown objective 'wake_sleep'.*miwae_m<M>"):
        objectives.get("wake_sleep")
    with pytest.raises(ValueError, match="ciwae_b"):
        objectives.get("ciwae_b1.5")
    with pytest.raises(ValueError, match="one stochastic layer.*layers: \\[1\\]"):
        TrainConfig(objective="iwae_dreg", n_layers=2)
    with pytest.raises(ValueError, match="not a multiple of 8"):
        TrainConfig(objective="miwae_m8", k=50)
    TrainConfig(objective="rws", n_layers=2)  # wake-phi needs no path derivative: fine with two layers


@pytest.mark.parametrize("estimator", ["iwae_stl", "iwae_dreg", "rws", "rws_dreg", "piwae_m2", "miwae_m1"])
def test_generative_gradient_is_iwaes_exactly_on_the_same_draws(estimator):
    model, x = model_1layer(), x_batch(b=3)
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    theta_iwae, _ = gradients(model, x, 4, "iwae", g1)
    theta_est, _ = gradients(model, x, 4, estimator, g2)
    assert torch.equal(theta_iwae, theta_est)


def _draws(model, x, k, names, n, seed):
    """n draws of each estimator's recognition gradient, the same samples for all of them -> {name: [n, P]}."""
    out = {name: [] for name in names}
    for i in range(n):
        for name in names:
            _, g_phi = gradients(model, x, k, name, torch.Generator().manual_seed(seed + i))
            out[name].append(g_phi)
    return {name: torch.stack(v).double() for name, v in out.items()}


FALSE_ALARM = 1e-3  # per test, Bonferroni over the projections


def _paired_z(diff: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """z statistics of the mean of diff [n, P] along each direction [c, P] (paired over the draws)."""
    s = diff @ directions.T  # [n, c]
    return s.mean(0) / (s.std(0) / math.sqrt(s.shape[0]))


def test_dreg_recognition_gradient_is_unbiased_and_stl_is_not():
    """E[DReG] = E[IWAE] and E[RWS-DReG] = E[wake-phi] (Tucker et al. 2018); E[STL] != E[IWAE] for K > 1.

    The same 600 draws feed every estimator. The differences of the last 300 draws are projected on 8
    random directions and on the mean difference of the first 300 (sample splitting: the direction is
    chosen without the draws it is tested on), and each projection is tested with a z test; the total
    false-alarm rate is FALSE_ALARM (two-sided, Bonferroni over the 9). For STL, the same projection on
    the mean difference must show |z| > 5.
    """
    torch.manual_seed(0)
    model, x = model_1layer(seed=2), x_batch(b=1, seed=7)
    with torch.no_grad():  # a recognition model far from the posterior, so that the weights vary
        model.q_layers[0].head.bias[50:] += 1.0
    draws = _draws(model, x, 5, ["iwae", "iwae_dreg", "iwae_stl", "rws", "rws_dreg"], 600, seed=100)
    p = draws["iwae"].shape[1]
    directions = torch.randn(8, p, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    critical = norm.ppf(1 - FALSE_ALARM / (2 * 9))
    for est, ref in (("iwae_dreg", "iwae"), ("rws_dreg", "rws")):
        diff = draws[est] - draws[ref]
        mean_dir = diff[:300].mean(0, keepdim=True)
        z = _paired_z(diff[300:], torch.cat([directions, mean_dir / mean_dir.norm()]))
        assert z.abs().max() < critical, f"{est} vs {ref}: z = {z.tolist()}"
    diff = draws["iwae_stl"] - draws["iwae"]
    direction = diff[:300].mean(0, keepdim=True)
    z = _paired_z(diff[300:], direction / direction.norm())
    assert z.abs().item() > 5, f"STL's bias not detected: z = {z.item()}"


def test_trainer_routes_each_gradient_to_its_network(fake_data_dir, tmp_path):
    """In one stack, IWAE and DReG members with the same seed: after two updates (the first moves nothing,
    the second follows the first gradient) the generative parameters agree exactly, the recognition ones do not."""
    cfgs = [TrainConfig(objective=o, k=4, seed=3, stages=[0], train_subset=40) for o in ("iwae", "iwae_dreg")]
    metas = train(cfgs, fake_data_dir, [tmp_path / "a", tmp_path / "b"], torch.device("cpu"), progress=False)
    assert metas[0]["updates"] == 2
    a = torch.load(tmp_path / "a" / "model.pt", weights_only=False)["state_dict"]
    b = torch.load(tmp_path / "b" / "model.pt", weights_only=False)["state_dict"]
    assert all(torch.equal(a[n], b[n]) for n in a if not n.startswith("q_layers"))
    assert not all(torch.equal(a[n], b[n]) for n in a if n.startswith("q_layers"))


def test_snr_slope_is_the_power_of_k_over_the_ks_where_it_is_defined():
    """SNR = c K^a gives slope a; a K where the SNR is undefined (RWS-DReG's zero gradient at K = 1) or has no signal
    (its interval reaches zero) is left out of the fit and named, instead of dropping the estimator."""
    from iwae.snr import slopes

    rows = [dict(checkpoint="t", estimator="iwae", network="recognition", k=k, snr=3.0 * k ** -0.5,
                 low=2.0 * k ** -0.5) for k in (1, 10, 100, 1000)]
    rows += [dict(checkpoint="t", estimator="rws_dreg", network="recognition", k=k,
                  snr=float("nan") if k == 1 else 0.2 * k ** 0.5, low=0.1) for k in (1, 10, 100, 1000)]
    rows += [dict(checkpoint="t", estimator="rws", network="recognition", k=k, snr=0.01, low=0.0 if k < 100 else 0.005)
             for k in (1, 10, 100, 1000)]
    fitted = {r["estimator"]: r for r in slopes(rows)}
    assert fitted["iwae"]["slope"] == pytest.approx(-0.5, abs=1e-9)
    assert fitted["rws_dreg"]["slope"] == pytest.approx(0.5, abs=1e-9) and fitted["rws_dreg"]["ks_undefined"] == "1"
    assert fitted["rws_dreg"]["ks_without_signal"] == ""  # undefined is named apart from "no signal"
    assert fitted["rws"]["ks_fitted"] == "100,1000" and fitted["rws"]["ks_without_signal"] == "1,10"
