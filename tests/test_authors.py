"""The authors' procedure (yburda/iwae), against NumPy transcriptions of their code.

Transcribed here (not imported from the package): nnet.Linear.random (initial weights), the layer
shapes of iwae.IWAE.random, datasets.get_train_bias_np (output bias), optimizers.Adam as Theano runs
its updates, datasets.BinarizedDatasetTheano's minibatches, and iwae.get_units_variances' np.var.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iwae.config import TrainConfig
from iwae.evaluate import activity
from iwae.model import IWAEModel, ModelConfig, initialise, output_bias_from_data
from iwae.optim import FlatAdam, FlatParameters
from iwae.stack import Stack
from iwae.train import train

CPU = torch.device("cpu")


# ----------------------------------------------------------------------------- initial weights
def authors_linear(n_in, n_out):
    """nnet.Linear.random(n_in, n_out): W [n_in, n_out] from a fresh RandomState(123), float32."""
    s = np.sqrt(6.0 / (n_in + n_out))
    return np.random.RandomState(123).uniform(low=-s, high=s, size=(n_in, n_out)).astype(np.float32)


def authors_layers(n_layers):
    """The units of every sampler of iwae.IWAE.random for experiments.py's two architectures."""
    if n_layers == 1:
        latent, hid_q, hid_p = [784, 50], [[200, 200]], [[200, 200]]
    else:
        latent, hid_q, hid_p = [784, 100, 50], [[200, 200], [100, 100]], [[100, 100], [200, 200]]
    q = [[a] + h + [b] for a, b, h in zip(latent, latent[1:], hid_q)]
    rev = list(reversed(latent))
    p_gauss = [[a] + h + [b] for a, b, h in zip(rev[:-1], rev[1:-1], hid_p[:-1])]
    p_bern = [latent[1]] + hid_p[-1] + [latent[0]]
    return q, p_gauss, p_bern


def expected_weights(n_layers, bias):
    """Our parameter names -> the authors' initial values, in torch's [out, in] layout."""
    q, p_gauss, p_bern = authors_layers(n_layers)
    out = {}

    def gaussian(prefix, units):
        out[f"{prefix}.mlp.l1.weight"] = authors_linear(units[0], units[1]).T
        out[f"{prefix}.mlp.l2.weight"] = authors_linear(units[1], units[2]).T
        mean, sigma = authors_linear(units[2], units[3]), authors_linear(units[2], units[3])  # two layers
        out[f"{prefix}.head.weight"] = np.concatenate([mean.T, sigma.T])
        for name in ("mlp.l1", "mlp.l2", "head"):
            out[f"{prefix}.{name}.bias"] = np.zeros(out[f"{prefix}.{name}.weight"].shape[0], np.float32)

    for i, units in enumerate(q):
        gaussian(f"q_layers.{i}", units)
    for j, units in enumerate(p_gauss):
        gaussian(f"p_layers.{j}", units)
    out["p_x.mlp.l1.weight"] = authors_linear(p_bern[0], p_bern[1]).T
    out["p_x.mlp.l2.weight"] = authors_linear(p_bern[1], p_bern[2]).T
    out["p_x.head.weight"] = authors_linear(p_bern[2], p_bern[3]).T
    out["p_x.mlp.l1.bias"] = np.zeros(p_bern[1], np.float32)
    out["p_x.mlp.l2.bias"] = np.zeros(p_bern[2], np.float32)
    out["p_x.head.bias"] = bias
    return out


@pytest.mark.parametrize("n_layers", [1, 2])
def test_initial_weights_are_bit_identical_to_the_authors(n_layers):
    grey = np.random.default_rng(0).random((300, 784)).astype(np.float32) ** 3
    # datasets.get_train_bias_np: -log(1 / clip(mean, 0.001, 0.999) - 1) in float32
    bias = (-np.log(1.0 / np.clip(np.mean(grey, axis=0)[None, :], 0.001, 0.999) - 1.0)).astype(np.float32)[0]
    ours = initialise(IWAEModel(ModelConfig(n_layers)), "authors", output_bias_from_data(torch.from_numpy(grey)),
                      seed=7).state_dict()
    expected = expected_weights(n_layers, bias)
    assert sorted(ours) == sorted(expected)
    for name, value in expected.items():
        assert ours[name].dtype == torch.float32
        assert np.array_equal(ours[name].numpy(), value), name
    # the seed does not change them
    again = initialise(IWAEModel(ModelConfig(n_layers)), "authors", torch.from_numpy(bias), seed=0).state_dict()
    assert all(torch.equal(again[n], ours[n]) for n in ours)


# ----------------------------------------------------------------------------- Adam in Theano's order
def theano_adam(p0, grads, lrs, b1=0.99, b2=0.999):
    """optimizers.Adam.updatesIgrad_model, every update computed from the values before the step.
    ``grads`` are gradients of the objective (maximised: param + alpha * m / ...)."""
    p, m, v, t = p0.copy(), np.zeros_like(p0), np.ones_like(p0), 1.0
    trace = []
    for g, lr in zip(grads, lrs):
        alpha = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        p, m, v, t = p + alpha * m / (np.sqrt(v) + 1e-4), b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g**2, t + 1
        trace.append(p.copy())
    return trace


def _run_ours(grads, lrs, graphable=False, reload_at=None):
    torch.manual_seed(0)
    module = torch.nn.Linear(4, 3).double()
    params = FlatParameters(module)
    p0 = params.flat.detach().numpy().copy()
    opt = FlatAdam(params, lr=lrs[0])
    t_dev = torch.zeros((), dtype=torch.float64)
    if graphable:
        opt.lr_tensor = torch.tensor(lrs[0], dtype=torch.float64)
    trace = []
    for i, (g, lr) in enumerate(zip(grads, lrs)):
        opt.lr = lr
        params.zero_grad()
        params.flat.grad.add_(torch.from_numpy(-g))  # the loss is -objective
        opt.step_graphable(t_dev) if graphable else opt.step()
        trace.append(params.flat.detach().numpy().copy())
        if i == reload_at:  # a checkpoint mid-run: a new optimiser loaded from the state goes on identically
            state = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in opt.state().items()}
            params = FlatParameters(module)
            opt = FlatAdam(params, lr=lr)
            opt.load(state)
    return p0, trace


@pytest.mark.parametrize("how", ["fused", "fused_reloaded", "graphable"])
def test_published_adam_is_theanos_update_order(how):
    rng = np.random.default_rng(1)
    grads = [10 * rng.standard_normal(15) for _ in range(7)]
    lrs = [1e-3] * 4 + [7.2e-4] * 3  # a stage change on the way
    p0, ours = _run_ours(grads, lrs, graphable=how == "graphable", reload_at=2 if how == "fused_reloaded" else None)
    ref = theano_adam(p0, grads, lrs)
    assert np.array_equal(ours[0], p0)  # the first update does not move the parameters
    for step, (a, b) in enumerate(zip(ours, ref)):
        assert np.allclose(a, b, rtol=0, atol=1e-12), f"step {step + 1}"
    assert not np.allclose(ours[1], p0)


def test_order_variants_differ_from_the_published_one():
    rng = np.random.default_rng(2)
    grads = [rng.standard_normal(15) for _ in range(3)]
    finals = {}
    for variant in ("published", "published_torch_order", "paper_text"):
        torch.manual_seed(0)
        params = FlatParameters(torch.nn.Linear(4, 3).double())
        opt = FlatAdam(params, lr=1e-3, variant=variant)
        for g in grads:
            params.zero_grad()
            params.flat.grad.add_(torch.from_numpy(-g))
            opt.step()
        finals[variant] = params.flat.detach().clone()
    # torch's order with the published constants: moments first, then the update with them
    torch.manual_seed(0)
    p = torch.nn.Linear(4, 3).double()
    flat = torch.cat([t.detach().reshape(-1) for t in p.parameters()])
    m, v = torch.zeros_like(flat), torch.ones_like(flat)
    for t, g in enumerate(grads, start=1):
        g = torch.from_numpy(-g)
        m, v = 0.99 * m + 0.01 * g, 0.999 * v + 0.001 * g**2
        flat = flat - 1e-3 * np.sqrt(1 - 0.999**t) / (1 - 0.99**t) * m / (v.sqrt() + 1e-4)
    assert torch.allclose(finals["published_torch_order"], flat, rtol=0, atol=1e-12)
    assert not torch.allclose(finals["published"], finals["published_torch_order"])
    assert not torch.allclose(finals["paper_text"], finals["published_torch_order"])


def test_paper_text_is_torchs_adam_with_the_papers_betas():
    """``paper_text``: torch.optim.Adam with the paper's text's beta1 = 0.9 (beta2 0.999, eps 1e-4), step for step,
    through a learning-rate change."""
    rng = np.random.default_rng(3)
    grads = [torch.from_numpy(rng.standard_normal(15)) for _ in range(6)]
    torch.manual_seed(0)
    params = FlatParameters(torch.nn.Linear(4, 3).double())
    ours = FlatAdam(params, lr=1e-3, variant="paper_text")
    ref = torch.nn.Parameter(params.flat.detach().clone())
    adam = torch.optim.Adam([ref], lr=1e-3, betas=(0.9, 0.999), eps=1e-4)
    for t, g in enumerate(grads):
        if t == 3:
            ours.lr = adam.param_groups[0]["lr"] = 5e-4
        params.zero_grad()
        params.flat.grad.add_(g)
        ours.step()
        ref.grad = g.clone()
        adam.step()
        assert torch.allclose(params.flat, ref, rtol=0, atol=1e-12), f"step {t + 1}"


# ----------------------------------------------------------------------------- data order, activity
def _recorded_minibatches(fake_data_dir, tmp_path, monkeypatch, data_order, orders=None):
    """The binary minibatches of a 2-epoch run (5 steps an epoch) as the model saw them; ``orders`` collects the
    row order of each epoch."""
    seen = []
    real, real_start = IWAEModel.log_weights, Stack.start_epoch

    def recording(self, x, k, **kw):
        seen.append(x.detach().clone())
        return real(self, x, k, **kw)

    def start(self, lr, first_step):
        real_start(self, lr, first_step)
        if orders is not None:
            orders.append(self.order[0].clone())

    monkeypatch.setattr(IWAEModel, "log_weights", recording)
    monkeypatch.setattr(Stack, "start_epoch", start)
    cfg = TrainConfig(k=1, stages=[0, 1], epoch_scale=0.34, train_subset=100, data_order=data_order)
    train(cfg, fake_data_dir, tmp_path / data_order, CPU, progress=False)
    return torch.stack(seen)[:, 0]  # [steps, B, 784] of the only member


def test_fixed_order_is_the_authors_minibatches_binarised_afresh(fake_data_dir, tmp_path, monkeypatch):
    from iwae.data import load

    grey = load("mnist", fake_data_dir)[0].train[:100]
    xs = _recorded_minibatches(fake_data_dir, tmp_path, monkeypatch, "fixed")
    assert xs.shape == (10, 20, 784)  # 2 epochs of 5 minibatches
    for step, x in enumerate(xs):
        rows = grey[20 * (step % 5): 20 * (step % 5) + 20]  # minibatch i = rows 20i .. 20i+19, every epoch
        assert torch.all(x[rows == 0] == 0) and torch.all(x[rows == 1] == 1)
        assert torch.all((x == 0) | (x == 1))
    assert not torch.equal(xs[0], xs[5])  # the same rows, binarised afresh


def test_reshuffle_draws_a_new_order_each_epoch(fake_data_dir, tmp_path, monkeypatch):
    """reshuffle: each epoch a new permutation of the rows from the member's generator, and step i takes rows
    order[20i .. 20i+19] of it (the binary pixels agree with those rows' zeros and ones)."""
    from iwae.data import load

    grey = load("mnist", fake_data_dir)[0].train[:100]
    orders = []
    xs = _recorded_minibatches(fake_data_dir, tmp_path, monkeypatch, "reshuffle", orders)
    assert len(orders) == 2 and not torch.equal(orders[0], orders[1])
    for order in orders:
        assert torch.equal(order.sort().values, torch.arange(100))
    for step, x in enumerate(xs):
        rows = grey[orders[step // 5][20 * (step % 5): 20 * (step % 5) + 20]]
        assert torch.all(x[rows == 0] == 0) and torch.all(x[rows == 1] == 1)
    first = grey[orders[0][:20]]
    assert not torch.all(xs[5][first == 0] == 0)  # epoch 2's first minibatch is other rows than epoch 1's


def test_activity_is_np_var_by_default():
    model = initialise(IWAEModel(ModelConfig(1)), "seeded", torch.zeros(784), seed=3)
    x = (torch.rand(40, 784, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    means = model.q_layers[0](x)[0].detach().numpy()
    a0 = activity(model, x)[0].numpy()
    assert np.allclose(a0, np.var(means, axis=0), rtol=1e-5, atol=1e-9)  # ddof = 0, as iwae.get_units_variances
    assert np.allclose(activity(model, x, ddof=1)[0].numpy(), np.var(means, axis=0, ddof=1), rtol=1e-5, atol=1e-9)


# ----------------------------------------------------------------------------- Table 2 continuation
def test_continuing_a_run_is_training_on(fake_data_dir, tmp_path):
    """Table 2 as the authors ran it: continuing a finished model with its optimiser and random state is
    exactly training on; a fresh optimiser (the suite's earlier way) is not."""
    common = dict(k=3, train_subset=200, seed=5)
    straight = train(TrainConfig(stages=[0, 1], epoch_scale=0.34, **common), fake_data_dir, tmp_path / "a", CPU,
                     progress=False)
    train(TrainConfig(stages=[0], epoch_scale=0.34, **common), fake_data_dir, tmp_path / "first", CPU, progress=False)
    first = str(tmp_path / "first" / "model.pt")
    train(TrainConfig(stages=[1], epoch_scale=0.34, init_from=first, **common), fake_data_dir, tmp_path / "cont",
          CPU, progress=False)
    train(TrainConfig(stages=[1], epoch_scale=0.34, init_from=first, continue_state=False, **common),
          fake_data_dir, tmp_path / "fresh", CPU, progress=False)
    load = lambda f: torch.load(tmp_path / f / "model.pt", weights_only=False)["state_dict"]  # noqa: E731
    a, cont, fresh = load("a"), load("cont"), load("fresh")
    assert all(torch.equal(a[n], cont[n]) for n in a)
    assert not all(torch.equal(a[n], fresh[n]) for n in a)
    assert straight["updates"] == 20
