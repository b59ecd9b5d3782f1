"""The IWAE bound against closed forms, torch.distributions and the paper's invariants."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import multivariate_normal

from iwae.bounds import elbo, iwae_bound
from iwae.objectives import objective


@pytest.fixture(autouse=True)
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


class LinearGaussian:
    """p(z) = N(0, I_d), p(x|z) = N(W z + b, s^2 I_D): log p(x) = log N(x; b, W W^T + s^2 I) exactly."""

    def __init__(self, d=3, D=5, s=0.7, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.W = torch.randn(D, d, generator=g)
        self.b = torch.randn(D, generator=g)
        self.s = s
        self.d, self.D = d, D

    def log_joint(self, x, z):  # z: [K, d] -> [K]
        prior = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
        lik = torch.distributions.Normal(z @ self.W.T + self.b, self.s).log_prob(x).sum(-1)
        return prior + lik

    def log_marginal(self, x):
        cov = self.W @ self.W.T + self.s**2 * torch.eye(self.D)
        return float(multivariate_normal(self.b.numpy(), cov.numpy()).logpdf(x.numpy()))

    def posterior(self, x):
        prec = torch.eye(self.d) + self.W.T @ self.W / self.s**2
        cov = torch.linalg.inv(prec)
        mean = cov @ self.W.T @ (x - self.b) / self.s**2
        return torch.distributions.MultivariateNormal(mean, covariance_matrix=cov)

    def log_w(self, x, q, k, generator=None):
        torch.manual_seed(0 if generator is None else generator)
        z = q.sample((k,))
        return (self.log_joint(x, z) - q.log_prob(z)).unsqueeze(1)  # [K, 1]


@pytest.fixture
def lg():
    return LinearGaussian()


def test_bound_equals_log_marginal_with_true_posterior(lg):
    x = torch.randn(lg.D)
    q = lg.posterior(x)
    for k in (1, 5, 50):
        assert float(iwae_bound(lg.log_w(x, q, k))) == pytest.approx(lg.log_marginal(x), abs=1e-9)


def test_bound_below_log_marginal_increases_with_k_and_converges(lg):
    x = torch.randn(lg.D)
    post = lg.posterior(x)
    q = torch.distributions.MultivariateNormal(post.mean + 0.5, covariance_matrix=2.0 * torch.eye(lg.d))
    log_px = lg.log_marginal(x)
    reps = 400
    means = {}
    for k in (1, 5, 50, 500):
        vals = torch.stack([iwae_bound(lg.log_w(x, q, k, generator=r)) for r in range(reps)])
        means[k] = float(vals.mean())
        sem = float(vals.std()) / math.sqrt(reps)
        assert means[k] < log_px + 3 * sem, f"E[L_{k}] above log p(x)"
    assert means[1] < means[5] < means[50] < means[500]
    gaps = [log_px - means[k] for k in (1, 5, 50, 500)]
    assert gaps[-1] < 0.1 * gaps[0], f"L_K does not approach log p(x): gaps {gaps}"


def test_l1_is_the_elbo(lg):
    x = torch.randn(lg.D)
    q = torch.distributions.MultivariateNormal(torch.zeros(lg.d), covariance_matrix=torch.eye(lg.d))
    log_w = lg.log_w(x, q, 1)
    assert torch.equal(iwae_bound(log_w), elbo(log_w))
    # and the Monte Carlo ELBO with many samples matches the analytic ELBO E_q[log p(x,z)] + H[q]
    log_w = lg.log_w(x, q, 200_000)
    z_mean, z_cov = torch.zeros(lg.d), torch.eye(lg.d)
    # E_q[log p(x|z)] for linear-Gaussian: -D/2 log(2 pi s^2) - (|x - b|^2 + tr(W cov W^T)) / (2 s^2)
    r = x - lg.b - lg.W @ z_mean
    e_lik = -lg.D / 2 * math.log(2 * math.pi * lg.s**2) - (r @ r + torch.trace(lg.W @ z_cov @ lg.W.T)) / (2 * lg.s**2)
    e_prior = -lg.d / 2 * math.log(2 * math.pi) - 0.5 * (z_mean @ z_mean + torch.trace(z_cov))
    analytic = float(e_lik + e_prior + q.entropy())
    assert float(elbo(log_w)) == pytest.approx(analytic, abs=0.05)


def test_logsumexp_is_stable_for_tiny_weights():
    log_w = torch.tensor([[-1e4], [-1e4 + math.log(3.0)]])
    assert float(iwae_bound(log_w)) == pytest.approx(-1e4 + math.log(2.0), abs=1e-9)
    assert torch.isfinite(iwae_bound(torch.full((5000, 3), -3e4))).all()


def test_objective_names():
    log_w = torch.randn(7, 4)
    assert torch.equal(objective("vae", log_w), log_w.mean(0))
    assert torch.allclose(objective("iwae", log_w), torch.log(torch.exp(log_w).mean(0)))
    with pytest.raises(ValueError, match="unknown objective"):
        objective("wake-sleep", log_w)
