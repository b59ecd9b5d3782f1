"""Datasets of the paper: fetching, verification, splits and dynamic binarisation.

Each dataset file is looked for, in order: in the cache folder (``data_dir``), in a local mirror
folder (argument, or the environment variable ``IWAE_DATA_MIRROR``), then at its upstream URLs
(downloaded with pooch). It is verified by a checksum of its *uncompressed* content. A file that
fails verification stops everything with a ``DataError`` that names the file, both checksums and
the fix, unless the caller opts in with ``allow_unverified`` -- a fact then recorded in the
manifest and in every result made from it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

MIRROR_ENV = "IWAE_DATA_MIRROR"
MNIST_URLS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)


@dataclass(frozen=True)
class RemoteFile:
    name: str  # file name in the cache and in the mirror
    urls: tuple[str, ...]
    algorithm: str  # "sha256" or "md5"
    checksum: str  # of the uncompressed content
    gzipped: bool


DATASETS: dict[str, tuple[RemoteFile, ...]] = {
    "mnist": tuple(
        RemoteFile(f"{stem}.gz", tuple(u + f"{stem}.gz" for u in MNIST_URLS), "sha256", sha, True)
        for stem, sha in [
            ("train-images-idx3-ubyte", "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
            ("train-labels-idx1-ubyte", "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
            ("t10k-images-idx3-ubyte", "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
            ("t10k-labels-idx1-ubyte", "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
        ]
    ),
    "omniglot": (
        RemoteFile(
            "chardata.mat",
            ("https://github.com/yburda/iwae/raw/master/datasets/OMNIGLOT/chardata.mat",),
            "md5",
            "21ecaf34373511aa7691cf2e0802aa3d",
            False,
        ),
    ),
}
MNIST_TRAIN, MNIST_VALID = 59_600, 400
OMNIGLOT_VALID, OMNIGLOT_SEED = 1_345, 123


class DataError(RuntimeError):
    """A data file is missing, truncated or does not match its checksum."""


def file_checksum(path: Path, algorithm: str, gzipped: bool) -> str:
    """Checksum of the file's uncompressed content; raises DataError for an unreadable file."""
    h = hashlib.new(algorithm)
    try:
        with (gzip.open(path, "rb") if gzipped else open(path, "rb")) as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except (OSError, EOFError) as e:  # truncated gzip, not gzip at all, unreadable
        raise DataError(
            f"{path}: cannot be read ({e}); the file is truncated or corrupt.\n"
            f"Fix: delete it and run the fetch step again (`iwae fetch` or the pipeline's data rule)."
        ) from e
    return h.hexdigest()


def _download(spec: RemoteFile, dest: Path) -> str | None:
    """Try each upstream URL; return the one that worked, or None."""
    import pooch  # imported here: only the fetch step needs it

    for url in spec.urls:
        try:
            pooch.retrieve(url, known_hash=None, fname=dest.name, path=dest.parent, progressbar=False)
            return url
        except Exception as e:  # network errors differ by backend; report and try the next URL
            print(f"  could not download {url}: {type(e).__name__}: {e}")
    return None


def fetch(
    dataset: str,
    data_dir: str | os.PathLike,
    mirror: str | os.PathLike | None = None,
    source_file: str | os.PathLike | None = None,
    allow_unverified: bool = False,
) -> dict:
    """Make ``data_dir/dataset/`` hold the verified files; write and return its manifest.

    source_file: an explicit local file to use instead of the dataset's (single) file -- e.g. the
        Omniglot stand-in; it is still checksummed, and recorded as the source.
    """
    if dataset not in DATASETS:
        raise DataError(f"unknown dataset {dataset!r}; expected one of {sorted(DATASETS)}")
    out = Path(data_dir) / dataset
    out.mkdir(parents=True, exist_ok=True)
    with _locked(out / ".fetch.lock"):  # several pipelines may share one cache: one fetch at a time
        return _fetch(dataset, out, mirror if mirror is not None else os.environ.get(MIRROR_ENV) or None,
                      source_file, allow_unverified)


class _locked:
    """An exclusive lock on ``path`` (flock; released when the holder ends, however it ends)."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        import fcntl

        self.file = open(self.path, "a")
        fcntl.flock(self.file, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        self.file.close()  # closing releases the lock


def _copy_atomic(src: str | os.PathLike, dest: Path) -> None:
    """Copy to a temporary name, then rename: a reader of ``dest`` never sees half a file."""
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)


def _fetch(dataset: str, out: Path, mirror, source_file, allow_unverified: bool) -> dict:
    records = []
    for spec in DATASETS[dataset]:
        dest = out / spec.name
        source = "cache"
        if source_file is not None:
            if len(DATASETS[dataset]) != 1:
                raise DataError(f"source_file is only for single-file datasets, not {dataset}")
            if not Path(source_file).is_file():
                raise DataError(f"{source_file}: no such file (given as the source of {dataset})")
            _copy_atomic(source_file, dest)
            source = str(Path(source_file).resolve())
        elif not dest.exists():
            candidate = Path(mirror) / dataset / spec.name if mirror else None
            if candidate is not None and candidate.is_file():
                _copy_atomic(candidate, dest)
                source = str(candidate.resolve())
            else:
                url = _download(spec, dest)
                if url is None:
                    where = f"is not in the mirror ({candidate})" if candidate else "is not cached, no mirror is set,"
                    local = (f" Or use a local copy of {spec.name} (downloaded from {spec.urls[0]} on a machine "
                             f"with internet): `iwae fetch {dataset} --source-file PATH`, in the pipeline "
                             f"--config omniglot_file=PATH (its checksum is still checked; a stand-in that fails "
                             f"it needs allow_unverified=[omniglot], and every result then says UNVERIFIED)."
                             if dataset == "omniglot" else "")
                    raise DataError(
                        f"{dataset}: {spec.name} {where} and could not be downloaded from {list(spec.urls)}.\n"
                        f"Fix: connect to the internet, or put the file in <mirror>/{dataset}/{spec.name} and "
                        f"set {MIRROR_ENV}=<mirror> (or the pipeline's data_mirror config value)." + local
                    )
                source = url
        copied = source != "cache"
        try:
            actual = file_checksum(dest, spec.algorithm, spec.gzipped)
        except DataError as e:
            if not copied:
                raise
            dest.unlink(missing_ok=True)  # never leave a bad copy in the cache
            raise DataError(
                f"{source}: cannot be read ({e.__cause__}); the file is truncated or corrupt (it was copied to "
                f"{dest}, now removed).\nFix: replace {source} with a good copy (or remove it, so that the file is "
                f"downloaded), then fetch again."
            ) from e
        verified = actual == spec.checksum
        if not verified and not allow_unverified:
            if copied:
                dest.unlink(missing_ok=True)
                fix = (f"replace {source} with the right file (or remove it, so that the file is downloaded), then "
                       f"fetch again")
            else:
                fix = f"delete {dest} and fetch it again from a trusted source"
            raise DataError(
                f"{dest}: {spec.algorithm} of the uncompressed content is {actual}, expected {spec.checksum} "
                f"(source: {source}).\n"
                f"Fix: {fix}; or, to use this file anyway, opt in with allow_unverified (every result will record "
                f"that the data were unverified)."
            )
        records.append(
            dict(file=spec.name, source=source, algorithm=spec.algorithm, checksum=actual,
                 expected=spec.checksum, verified=verified)
        )
    manifest = dict(dataset=dataset, files=records, verified=all(r["verified"] for r in records))
    path = out / "manifest.json"

    def checked(files):  # what a manifest says of the files, whatever they were copied from
        return [{k: v for k, v in r.items() if k != "source"} for r in files]

    try:
        before = json.loads(path.read_text())
    except (OSError, ValueError):
        before = None
    if before and before.get("verified") == manifest["verified"] and checked(before.get("files", [])) == checked(records):
        return before  # the cache as verified before: the manifest (and its time) stays, a pipeline does not retrain
    tmp = path.with_name(f".manifest.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, path)  # a reader never sees half a manifest
    return manifest


def read_manifest(dataset: str, data_dir: str | os.PathLike) -> dict:
    path = Path(data_dir) / dataset / "manifest.json"
    if not path.is_file():
        raise DataError(f"{path}: no manifest; fetch the data first (`iwae fetch {dataset} --data-dir {data_dir}`).")
    manifest = json.loads(path.read_text())
    for rec in manifest["files"]:  # the cache must still hold what was verified
        f = Path(data_dir) / dataset / rec["file"]
        if not f.is_file():
            raise DataError(f"{f}: missing from the data cache; run the fetch step again.")
        if f.stat().st_mtime > path.stat().st_mtime:
            actual = file_checksum(f, rec["algorithm"], rec["file"].endswith(".gz"))
            if actual != rec["checksum"]:
                raise DataError(
                    f"{f}: changed since it was fetched ({rec['algorithm']} {actual}, manifest says "
                    f"{rec['checksum']}). Fix: delete it and run the fetch step again."
                )
    return manifest


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


@dataclass
class Splits:
    """Grey-level pixel probabilities in [0, 1], each [N, 784] float32."""

    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor


def load_mnist(folder: Path) -> Splits:
    """Standard split; train = first 59,600 training images, validation = the last 400 (no shuffle)."""
    train = _read_idx(folder / "train-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255.0
    test = _read_idx(folder / "t10k-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255.0
    t = torch.from_numpy
    return Splits(t(train[:MNIST_TRAIN].copy()), t(train[MNIST_TRAIN:].copy()), t(test))


def omniglot_images(columns: np.ndarray) -> np.ndarray:
    """chardata.mat stores each 28x28 image as a column in column-major order: [784, N] -> [N, 784] row-major."""
    n = columns.shape[1]
    return np.ascontiguousarray(columns.T.reshape(n, 28, 28).transpose(0, 2, 1).reshape(n, 784), dtype=np.float32)


def load_omniglot(folder: Path) -> Splits:
    """The IWAE split: train+valid = ``data`` permuted by RandomState(123), last 1,345 for validation."""
    from scipy.io import loadmat

    mat = loadmat(folder / "chardata.mat")
    for key in ("data", "testdata"):
        if key not in mat or mat[key].shape[0] != 784:
            raise DataError(f"{folder / 'chardata.mat'}: expected a 784xN array '{key}' (chardata.mat format)")
    data = omniglot_images(mat["data"])
    perm = np.random.RandomState(OMNIGLOT_SEED).permutation(data.shape[0])
    data = data[perm]
    t = torch.from_numpy
    return Splits(t(data[:-OMNIGLOT_VALID].copy()), t(data[-OMNIGLOT_VALID:].copy()), t(omniglot_images(mat["testdata"])))


def load(dataset: str, data_dir: str | os.PathLike) -> tuple[Splits, dict]:
    """The dataset's splits and its manifest (fetch first)."""
    manifest = read_manifest(dataset, data_dir)
    folder = Path(data_dir) / dataset
    splits = load_mnist(folder) if dataset == "mnist" else load_omniglot(folder)
    return splits, manifest


def binarize(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One dynamic binarisation: each pixel is 1 with its grey-level probability."""
    u = torch.rand(probs.shape, generator=generator, device=probs.device, dtype=probs.dtype)
    return (u < probs).to(probs.dtype)


def binarisation_entropy(probs: torch.Tensor) -> torch.Tensor:
    """The entropy in nats of one dynamic binarisation of each image ([N, 784] grey levels -> [N]): the sum over
    pixels of the Bernoulli entropy h(p). No model of dynamically binarised images can have a test NLL below the
    mean of it (the NLL is a cross-entropy, at least the entropy of the binary images, which is at least their
    entropy given the grey images): grey levels are noise a model must pay for."""
    p = probs.double()
    return -(torch.xlogy(p, p) + torch.xlogy(1 - p, 1 - p)).sum(dim=1)
