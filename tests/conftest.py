"""Shared fixtures: tiny data sets the tests write themselves, and the real MNIST where needed."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_fake_mnist(folder: Path, n_train: int = 60_000, n_test: int = 100, seed: int = 0) -> None:
    """MNIST-format IDX files with random blobs (their checksums do NOT match the real ones)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for stem, n in (("train", n_train), ("t10k", n_test)):
        imgs = (rng.random((n, 28, 28)) < 0.15) * rng.integers(100, 256, (n, 28, 28))
        write_idx(folder / f"{stem}-images-idx3-ubyte.gz", imgs)
        write_idx(folder / f"{stem}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))


def write_fake_omniglot(path: Path, n_train: int = 1_400, n_test: int = 60, seed: int = 0) -> np.ndarray:
    """A chardata.mat-format file: 784xN columns, each a 28x28 image stored column-major."""
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    images = rng.random((n_train + n_test, 28, 28)).astype(np.float32) * (rng.random((n_train + n_test, 28, 28)) < 0.2)
    cols = images.reshape(len(images), -1, order="F").T  # column-major per image -> [784, N]
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, {"data": cols[:, :n_train], "testdata": cols[:, n_train:]})
    return images


@pytest.fixture(scope="session")
def fake_data_dir(tmp_path_factory) -> Path:
    """A data cache holding fake MNIST and Omniglot, fetched (unverified, explicitly) through iwae.data."""
    from iwae.data import fetch

    root = tmp_path_factory.mktemp("fake")
    mirror = root / "mirror"
    write_fake_mnist(mirror / "mnist", n_train=2_000, n_test=100)  # train split = all 2,000
    write_fake_omniglot(mirror / "omniglot" / "chardata.mat")
    data_dir = root / "data"
    fetch("mnist", data_dir, mirror=mirror, allow_unverified=True)
    fetch("omniglot", data_dir, mirror=mirror, allow_unverified=True)
    return data_dir


def mirror_or_fail() -> Path:
    """The real-data mirror. In CI a missing mirror FAILS the test; elsewhere the test is skipped."""
    mirror = os.environ.get("IWAE_DATA_MIRROR") or str(REPO.parent / "shared" / "data")
    if (Path(mirror) / "mnist" / "train-images-idx3-ubyte.gz").is_file():
        return Path(mirror)
    msg = f"real MNIST not found under {mirror}/mnist (set IWAE_DATA_MIRROR to a folder holding mnist/*.gz)"
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def real_data_dir(tmp_path_factory) -> Path:
    from iwae.data import fetch

    mirror = mirror_or_fail()
    data_dir = tmp_path_factory.mktemp("real")
    fetch("mnist", data_dir, mirror=mirror)
    return data_dir


def sixty_steps(objectives, grey, mode: str, steps: int = 60):
    """A stack of ``objectives`` (seeds 0, 1, ...; independent initial weights) run ``steps`` steps the way ``mode``
    says, from lr 1e-3: -> (the summed objective of each epoch [epochs, M], the final flat parameters, on the CPU)."""
    import torch

    from iwae.config import TrainConfig
    from iwae.stack import build

    st = build([TrainConfig(objective=o, k=5, seed=s, init="seeded") for s, o in enumerate(objectives)], grey, lr=1e-3)
    st.use(mode)
    st.start_epoch(1e-3, 0)
    losses = []
    for i in range(steps):
        st.step()
        if (i + 1) % st.n_batches == 0:
            losses.append(st.partial.sum(1).cpu())
            st.partial.zero_()
    assert st.opt.t == steps
    return torch.stack(losses), st.params.flat.detach().cpu().clone()


def two_groups_alone(data_dir, root: Path, device):
    """Two groups (1 layer K=2: VAE and IWAE; 2 layers K=3: IWAE; reshuffled minibatches), each trained alone
    under root/alone. -> (the groups' configs, their folders alone, the folders for a run of them together)."""
    from iwae.config import TrainConfig
    from iwae.train import train

    common = dict(stages=[0, 1], train_subset=200, data_order="reshuffle")
    groups = [[TrainConfig(n_layers=1, k=2, objective=o, seed=s, **common) for o, s in (("vae", 0), ("iwae", 1))],
              [TrainConfig(n_layers=2, k=3, objective="iwae", seed=2, **common)]]
    outs = {name: [[root / name / f"g{g}m{m}" for m in range(len(c))] for g, c in enumerate(groups)]
            for name in ("alone", "together")}
    for cfgs, folders in zip(groups, outs["alone"]):
        train(cfgs, data_dir, folders, device, progress=False)
    return groups, outs["alone"], outs["together"]


def assert_same_models(groups_a, groups_b, atol: float = 0.0):
    """Every member's model.pt in groups_a equals its counterpart's in groups_b (within atol)."""
    import torch

    from iwae.checkpoint import load_model

    for a_group, b_group in zip(groups_a, groups_b):
        for a, b in zip(a_group, b_group):
            ref, got = load_model(a / "model.pt").state_dict(), load_model(b / "model.pt").state_dict()
            assert all(torch.allclose(ref[n], got[n], rtol=0, atol=atol) for n in ref), a
