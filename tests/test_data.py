"""Fetching, verification and the paper's splits."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import torch
from conftest import write_fake_mnist, write_fake_omniglot

from iwae import data


def test_omniglot_loader_on_a_chardata_file(tmp_path):
    images = write_fake_omniglot(tmp_path / "mirror" / "omniglot" / "chardata.mat", n_train=1_400, n_test=60)
    manifest = data.fetch("omniglot", tmp_path / "d", mirror=tmp_path / "mirror", allow_unverified=True)
    record = manifest["files"][0]  # the stand-in's checksum and the expected one, both recorded
    assert manifest["verified"] is False and record["checksum"] != record["expected"]
    assert record["checksum"] == data.file_checksum(tmp_path / "mirror" / "omniglot" / "chardata.mat", "md5", False)
    splits, _ = data.load("omniglot", tmp_path / "d")
    flat = images.reshape(len(images), 784)  # row-major images, as the model sees them
    perm = np.random.RandomState(123).permutation(1_400)
    assert splits.train.shape == (1_400 - 1_345, 784) and splits.valid.shape == (1_345, 784)
    assert np.allclose(splits.train.numpy(), flat[perm[:-1_345]])
    assert np.allclose(splits.valid.numpy(), flat[perm[-1_345:]])
    assert np.allclose(splits.test.numpy(), flat[1_400:])


def test_checksum_mismatch_is_refused_with_the_promised_error(tmp_path):
    write_fake_mnist(tmp_path / "mirror" / "mnist", n_train=10, n_test=10)
    with pytest.raises(data.DataError) as e:
        data.fetch("mnist", tmp_path / "d", mirror=tmp_path / "mirror")
    msg = str(e.value)
    assert "train-images-idx3-ubyte.gz" in msg
    assert "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db" in msg  # expected
    assert "sha256" in msg and "Fix:" in msg and "allow_unverified" in msg
    mirror_file = tmp_path / "mirror" / "mnist" / "train-images-idx3-ubyte.gz"
    assert data.file_checksum(mirror_file, "sha256", True) in msg  # the actual checksum is named too
    assert f"Fix: replace {mirror_file.resolve()}" in msg  # the file to fix is the mirror's, not the cache copy


def test_truncated_mirror_file_names_the_mirror_file_and_a_fix_that_works(tmp_path):
    write_fake_mnist(tmp_path / "mirror" / "mnist", n_train=50, n_test=10)
    f = tmp_path / "mirror" / "mnist" / "t10k-images-idx3-ubyte.gz"
    good = f.read_bytes()
    f.write_bytes(good[:100])
    with pytest.raises(data.DataError) as e:
        data.fetch("mnist", tmp_path / "d", mirror=tmp_path / "mirror", allow_unverified=True)
    assert str(f.resolve()) in str(e.value) and "truncated or corrupt" in str(e.value)
    assert f"Fix: replace {f.resolve()}" in str(e.value)
    assert not (tmp_path / "d" / "mnist" / f.name).exists()  # no bad copy left in the cache
    f.write_bytes(good)  # the fix it names works
    data.fetch("mnist", tmp_path / "d", mirror=tmp_path / "mirror", allow_unverified=True)


def test_truncated_cache_file_names_the_file_and_the_fix(tmp_path):
    write_fake_mnist(tmp_path / "mirror" / "mnist", n_train=50, n_test=10)
    data.fetch("mnist", tmp_path / "d", mirror=tmp_path / "mirror", allow_unverified=True)
    f = tmp_path / "d" / "mnist" / "t10k-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(data.DataError, match=r"t10k-images-idx3-ubyte.gz.*truncated or corrupt(.|\n)*Fix: delete"):
        data.fetch("mnist", tmp_path / "d", mirror=tmp_path / "mirror", allow_unverified=True)


def test_missing_file_offline_says_how_to_use_a_mirror(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_download", lambda spec, dest: None)
    monkeypatch.delenv(data.MIRROR_ENV, raising=False)
    with pytest.raises(data.DataError, match="IWAE_DATA_MIRROR") as e:
        data.fetch("omniglot", tmp_path / "d")
    # where the paper's file comes from, and how to point the pipeline at a local copy
    assert "github.com/yburda/iwae" in str(e.value) and "omniglot_file=PATH" in str(e.value)


def test_changed_cache_file_is_detected(fake_data_dir, tmp_path):
    import shutil

    d = tmp_path / "copy"
    shutil.copytree(fake_data_dir / "mnist", d / "mnist")
    with gzip.open(d / "mnist" / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(b"\x00\x00\x08\x01\x00\x00\x00\x01\x07")
    with pytest.raises(data.DataError, match="changed since it was fetched"):
        data.load("mnist", d)


def test_binarize_is_bernoulli_of_the_grey_levels():
    p = torch.full((20_000, 4), 0.3)
    b = data.binarize(p, torch.Generator().manual_seed(0))
    assert set(b.unique().tolist()) <= {0.0, 1.0}
    assert float(b.mean()) == pytest.approx(0.3, abs=0.005)


def test_real_mnist_split_and_sanity_figures(real_data_dir):
    manifest = json.loads((real_data_dir / "mnist" / "manifest.json").read_text())
    assert manifest["verified"] is True
    splits, _ = data.load("mnist", real_data_dir)
    assert splits.train.shape == (59_600, 784) and splits.valid.shape == (400, 784)
    assert splits.test.shape == (10_000, 784)
    full = torch.cat([splits.train, splits.valid])
    assert float(full.mean()) == pytest.approx(0.13066, abs=1e-5)
    assert float(full.std()) == pytest.approx(0.30811, abs=1e-4)


def test_two_fetches_and_a_reader_sharing_one_cache_at_once(tmp_path):
    """Two pipelines started together on one data cache: two fetches run at once (one after the other under the
    cache's lock), while a third process keeps reading the manifest; nobody fails, nobody sees half a file, and a
    fetch that finds the cache verified leaves the manifest (and its time, which Snakemake compares) alone."""
    import subprocess
    import sys
    import textwrap

    mirror = tmp_path / "mirror"
    write_fake_mnist(mirror / "mnist", n_train=20_000, n_test=100)
    cache = tmp_path / "cache"
    fetch_cmd = [sys.executable, "-c", f"from iwae.data import fetch; fetch('mnist', {str(cache)!r}, "
                                       f"mirror={str(mirror)!r}, allow_unverified=True)"]
    reader = textwrap.dedent(f"""
        import time
        from iwae.data import DataError, read_manifest
        seen, deadline = 0, time.monotonic() + 20
        while time.monotonic() < deadline and seen < 200:
            try:
                read_manifest('mnist', {str(cache)!r})
                seen += 1
            except DataError as e:
                if 'no manifest' not in str(e):  # before the first fetch ends there is none: any other error fails
                    raise
        assert seen >= 200, seen
    """)
    procs = [subprocess.Popen(fetch_cmd, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    procs.append(subprocess.Popen([sys.executable, "-c", reader], stderr=subprocess.PIPE, text=True))
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    manifest = cache / "mnist" / "manifest.json"
    before = manifest.stat().st_mtime_ns
    data.fetch("mnist", cache, mirror=mirror, allow_unverified=True)
    assert manifest.stat().st_mtime_ns == before


def test_the_binarisation_entropy_is_the_entropy_of_the_binary_images_a_grey_image_gives():
    """Closed form against scipy's Bernoulli entropy, and against the entropy of the binary images counted over
    simulated binarisations of a 4-pixel image (16 outcomes): binary pixels cost nothing, grey ones up to log 2."""
    from collections import Counter

    import numpy as np
    from scipy.stats import bernoulli, entropy

    from iwae.data import binarisation_entropy, binarize

    grey = torch.tensor([[0.0, 1.0, 0.5, 0.2], [0.9, 0.1, 0.7, 0.35]])
    h = binarisation_entropy(grey)
    assert h.tolist() == pytest.approx([sum(bernoulli(p).entropy() for p in row) for row in grey.tolist()], abs=1e-12)
    assert binarisation_entropy(torch.tensor([[0.0, 1.0, 1.0, 0.0]])).item() == 0.0
    draws = binarize(grey[1].expand(200_000, 4), torch.Generator().manual_seed(0))
    counts = Counter(map(tuple, draws.int().tolist()))
    assert entropy(np.array(list(counts.values())) / len(draws)) == pytest.approx(h[1].item(), abs=0.01)
