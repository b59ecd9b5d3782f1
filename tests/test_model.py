"""The model's densities against torch.distributions, its sizes, and the IWAE gradient identity."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal

from iwae.bounds import elbo, iwae_bound
from iwae.checkpoint import member_state_dict
from iwae.model import IWAEModel, ModelConfig, bernoulli_log_prob, initialise, stack


def reference_log_weights(model: IWAEModel, x: torch.Tensor, noise: list[torch.Tensor]) -> torch.Tensor:
    """log w written independently: x replicated per sample, every density from torch.distributions."""
    k = noise[0].shape[0]
    xk = x.expand(k, *x.shape)  # [K, B, 784]
    h, log_q, samples = xk, 0.0, []
    for layer, eps in zip(model.q_layers, noise):
        mean, log_sigma = layer(h)
        q = Normal(mean, log_sigma.exp())
        h = mean + log_sigma.exp() * eps
        log_q = log_q + q.log_prob(h).sum(-1)
        samples.append(h)
    log_p = Normal(0.0, 1.0).log_prob(samples[-1]).sum(-1)
    for j in reversed(range(len(model.p_layers))):
        mean, log_sigma = model.p_layers[j](samples[j + 1])
        log_p = log_p + Normal(mean, log_sigma.exp()).log_prob(samples[j]).sum(-1)
    log_p = log_p + Bernoulli(logits=model.p_x(samples[0])).log_prob(xk).sum(-1)
    return log_p - log_q


def seeded(layers: int, seed: int = 0) -> IWAEModel:
    """A model with independent random weights (the authors' initialisation makes heads equal)."""
    bias = torch.randn(784, generator=torch.Generator().manual_seed(seed + 100))
    return initialise(IWAEModel(ModelConfig(layers)), "seeded", bias, seed=seed)


@pytest.fixture(params=[1, 2], ids=["1layer", "2layers"])
def model(request):
    return seeded(request.param)


def batch(b=6, seed=1):
    return (torch.rand(b, 784, generator=torch.Generator().manual_seed(seed)) < 0.3).float()


def test_log_densities_match_torch_distributions():
    g = torch.Generator().manual_seed(0)
    logits = 5 * torch.randn(4, 3, 11, generator=g)
    x = (torch.rand(3, 11, generator=g) < 0.5).float()
    assert torch.allclose(bernoulli_log_prob(x, logits), Bernoulli(logits=logits).log_prob(x.expand(4, 3, 11)).sum(-1),
                          atol=1e-4)


def test_log_weights_match_reference(model):
    x = batch()
    g = torch.Generator().manual_seed(2)
    noise = [torch.randn(5, x.shape[0], d, generator=g) for d in model.latent_sizes]
    ours = model.log_weights(x, 5, noise=noise)
    assert ours.shape == (5, 6)
    assert torch.allclose(ours, reference_log_weights(model, x, noise), rtol=1e-5, atol=1e-3)
    # removing no unit changes nothing
    all_on = [torch.ones(d, dtype=torch.bool) for d in model.latent_sizes]
    assert torch.allclose(model.log_weights(x, 5, noise=noise, active=all_on), ours, atol=1e-3)


def test_parameter_counts():
    def linear(i, o):
        return i * o + o

    one = (linear(784, 200) + linear(200, 200) + linear(200, 100)  # q(z|x): mean and log-sigma heads of 50
           + linear(50, 200) + linear(200, 200) + linear(200, 784))  # p(x|z)
    two = (linear(784, 200) + linear(200, 200) + linear(200, 200)  # q(h1|x): 2 x 100 outputs
           + linear(100, 100) + linear(100, 100) + linear(100, 100)  # q(h2|h1): 2 x 50
           + linear(50, 100) + linear(100, 100) + linear(100, 200)  # p(h1|h2): 2 x 100
           + linear(100, 200) + linear(200, 200) + linear(200, 784))  # p(x|h1)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(IWAEModel(ModelConfig(1))) == one == 425_284
    assert count(IWAEModel(ModelConfig(2))) == two
    with pytest.raises(ValueError, match="n_layers"):
        ModelConfig(3)


def test_seeded_init_is_glorot_with_the_given_output_bias():
    bias = torch.linspace(-3, 3, 784)
    m = initialise(IWAEModel(ModelConfig(1)), "seeded", bias, seed=0)
    assert torch.equal(m.p_x.head.bias, bias)
    w = m.q_layers[0].mlp.l1.weight
    bound = (6 / (784 + 200)) ** 0.5
    assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound
    assert torch.count_nonzero(m.q_layers[0].mlp.l1.bias) == 0
    head = m.q_layers[0].head.weight  # mean and log-sigma halves: independent, each Glorot for (200, 50)
    assert not torch.equal(head[:50], head[50:]) and head.abs().max() <= (6 / 250) ** 0.5
    other = initialise(IWAEModel(ModelConfig(1)), "seeded", bias, seed=1)
    assert not torch.equal(other.q_layers[0].mlp.l1.weight, w)


def test_stack_is_its_members():
    """A stack's log weights are each member's, on each member's inputs and noise."""
    members = [seeded(2, seed=s) for s in range(3)]
    st = stack(members)
    g = torch.Generator().manual_seed(3)
    x = (torch.rand(3, 4, 784, generator=g) < 0.3).float()
    noise = [torch.randn(3, 5, 4, d, generator=g) for d in st.latent_sizes]
    out = st.log_weights(x, 5, noise=noise)
    assert out.shape == (3, 5, 4)
    for m, single in enumerate(members):
        alone = single.log_weights(x[m], 5, noise=[e[m] for e in noise])
        assert torch.allclose(out[m], alone, rtol=1e-6, atol=1e-4)
        assert all(torch.equal(member_state_dict(st, m)[k], v) for k, v in single.state_dict().items())


def test_q_fixed_keeps_values_and_gives_the_path_gradient():
    """q_fixed: the same log w; the recognition gradient is that of log q with q's parameters frozen."""
    model = seeded(1)
    x = batch(b=2)
    eps = [torch.randn(3, 2, 50, generator=torch.Generator().manual_seed(9))]
    full = model.log_weights(x, 3, noise=eps)
    fixed = model.log_weights(x, 3, noise=eps, q_fixed=True)
    assert torch.equal(full, fixed)
    phi = model.recognition_parameters()
    g_fixed = torch.autograd.grad(fixed.sum(), phi)
    # the path derivative written out: log p(x, z(phi)) - log q_stop(z(phi)) with a frozen copy of q
    mean, log_sigma = model.q_layers[0](x)
    z = mean + log_sigma.exp() * eps[0]
    q = Normal(mean.detach(), log_sigma.exp().detach())
    log_w = (Normal(0.0, 1.0).log_prob(z).sum(-1) - q.log_prob(z).sum(-1)
             + Bernoulli(logits=model.p_x(z)).log_prob(x.expand(3, 2, 784)).sum(-1))
    g_ref = torch.autograd.grad(log_w.sum(), phi)
    for a, b in zip(g_fixed, g_ref):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4)
    # ... which is not the full gradient (that has the score term of log q too)
    g_full = torch.autograd.grad(full.sum(), phi)
    assert not all(torch.allclose(a, b, atol=1e-4) for a, b in zip(g_full, g_fixed))


def test_iwae_gradient_is_normalised_weight_average(model):
    """grad L_K = sum_k softmax(log w)_k grad log w_k (the paper's eq. 7), with the noise held fixed."""
    x = batch(b=1)
    k = 4
    g = torch.Generator().manual_seed(5)
    noise = [torch.randn(k, 1, d, generator=g) for d in model.latent_sizes]
    params = list(model.parameters())
    grads = torch.autograd.grad(iwae_bound(model.log_weights(x, k, noise=noise)).sum(), params)
    log_w = model.log_weights(x, k, noise=noise)[:, 0]
    weights = torch.softmax(log_w.detach(), dim=0)
    expected = [torch.zeros_like(p) for p in params]
    for i in range(k):
        gi = torch.autograd.grad(log_w[i], params, retain_graph=True)
        expected = [e + weights[i] * gg for e, gg in zip(expected, gi)]
    for a, b in zip(grads, expected):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)
    # ... and it is NOT the VAE gradient (the uniform average) for unequal weights
    vae = torch.autograd.grad(elbo(model.log_weights(x, k, noise=noise)).sum(), params)
    assert not all(torch.allclose(a, b, atol=1e-5) for a, b in zip(grads, vae))


def test_removing_units_is_the_model_without_them():
    """With units masked out, log w is that of the model whose removed units are held at 0."""
    model = seeded(1)
    x = batch(b=3)
    active = torch.zeros(50, dtype=torch.bool)
    active[:20] = True
    eps = torch.randn(4, 3, 50, generator=torch.Generator().manual_seed(4))
    ours = model.log_weights(x, 4, noise=[eps], active=[active])
    mean, log_sigma = model.q_layers[0](x)
    z = (mean + log_sigma.exp() * eps) * active  # removed units held at their prior mean, 0
    q = Normal(mean[:, :20], log_sigma[:, :20].exp())
    expected = (Normal(0.0, 1.0).log_prob(z[..., :20]).sum(-1) - q.log_prob(z[..., :20]).sum(-1)
                + Bernoulli(logits=model.p_x(z)).log_prob(x.expand(4, 3, 784)).sum(-1))
    assert torch.allclose(ours, expected, atol=1e-3)


def test_log_q_of_the_stopped_samples_in_two_layers():
    """with_log_q (reweighted wake-sleep's recognition term): log q(stop(h) | x) with q's parameters live, the
    top layer given its stopped parent, against torch.distributions (up to the -d/2 log 2 pi constants the
    model leaves out), value and gradient."""
    model = seeded(2)
    x = batch(b=3)
    g = torch.Generator().manual_seed(6)
    noise = [torch.randn(4, 3, d, generator=g) for d in model.latent_sizes]
    _, log_q = model.log_weights(x, 4, noise=noise, with_log_q=True)
    m1, s1 = model.q_layers[0](x)
    h1 = (m1 + s1.exp() * noise[0]).detach()  # [4, 3, 100]
    m2, s2 = model.q_layers[1](h1)
    h2 = (m2 + s2.exp() * noise[1]).detach()
    ref = Normal(m1, s1.exp()).log_prob(h1).sum(-1) + Normal(m2, s2.exp()).log_prob(h2).sum(-1)
    constant = 0.5 * math.log(2 * math.pi) * sum(model.latent_sizes)
    assert torch.allclose(log_q, ref + constant, rtol=1e-5, atol=1e-3)
    phi = model.recognition_parameters()
    for a, b in zip(torch.autograd.grad(log_q.sum(), phi), torch.autograd.grad(ref.sum(), phi)):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4)
    _, log_q = model.log_weights(x, 4, noise=noise, with_log_q=True)  # the generative network plays no part
    theta = list(model.generative_parameters())
    assert all(d is None for d in torch.autograd.grad(log_q.sum(), theta, allow_unused=True))
