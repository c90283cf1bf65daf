"""Tests for aigc_course.data: digits split, 2D toys, docs corpus, CharVocab, downloads (loopback only)."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import gzip
import hashlib
import http.server
import math
import socket
import struct
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pooch
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from aigc_course import data
from aigc_course.data import text as text_module

pooch.get_logger().setLevel("WARNING")

SHARED_SHAKESPEARE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "tinyshakespeare.txt"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Every test gets an empty cache folder and no mirror override; loopback bypasses any proxy."""
    monkeypatch.setenv("AIGC_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("AIGC_DATA_URL", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


# ----------------------------------------------------------------------------------------------- digits


def _raw_digits():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images, bunch.target


def test_digits_split_shapes_dtypes_ranges():
    split = data.load_digits_split()
    raw_images, raw_labels = _raw_digits()
    assert split.train_images.shape[1:] == (8, 8) and split.test_images.shape[1:] == (8, 8)
    assert split.train_images.dtype == torch.float32 and split.train_labels.dtype == torch.int64
    assert split.train_images.shape[0] == split.train_labels.shape[0]
    assert split.test_images.shape[0] == split.test_labels.shape[0]
    assert split.train_labels.shape[0] + split.test_labels.shape[0] == len(raw_labels)
    for x in (split.train_images, split.test_images):
        assert float(x.min()) == 0.0 and float(x.max()) == 1.0  # raw 0..16 scaled by 1/16
    # Same images as sklearn's, scaled by 1/16, none lost or duplicated.
    ours = collections.Counter(
        (img.mul(16).round().to(torch.uint8).numpy().tobytes(), int(y))
        for img, y in zip(torch.cat([split.train_images, split.test_images]),
                          torch.cat([split.train_labels, split.test_labels]), strict=True)
    )
    theirs = collections.Counter(
        (img.astype(np.uint8).tobytes(), int(y)) for img, y in zip(raw_images, raw_labels, strict=True)
    )
    assert ours == theirs


def test_digits_split_is_stratified():
    _, raw_labels = _raw_digits()
    for fraction in (0.2, 0.5):
        split = data.load_digits_split(test_fraction=fraction)
        for c in range(10):
            n_c = int((raw_labels == c).sum())
            assert int((split.test_labels == c).sum()) == round(fraction * n_c)
            assert int((split.train_labels == c).sum()) == n_c - round(fraction * n_c)


def test_digits_split_deterministic_and_seeded():
    a, b = data.load_digits_split(seed=3), data.load_digits_split(seed=3)
    for field in dataclasses.fields(a):
        assert torch.equal(getattr(a, field.name), getattr(b, field.name))
    c = data.load_digits_split(seed=4)
    assert not torch.equal(a.test_images, c.test_images)
    # Shuffled across classes, not sorted by label.
    assert not torch.equal(a.train_labels, a.train_labels.sort().values)


def test_digits_split_frozen():
    split = data.load_digits_split()
    with pytest.raises(dataclasses.FrozenInstanceError):
        split.train_images = torch.zeros(1)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"test_fraction": 0.0}, ValueError, "test_fraction"),
    ({"test_fraction": 1.0}, ValueError, "test_fraction"),
    ({"test_fraction": -0.1}, ValueError, "test_fraction"),
    ({"test_fraction": "0.2"}, TypeError, "test_fraction"),
    ({"test_fraction": True}, TypeError, "test_fraction"),
    ({"seed": -1}, ValueError, r"^seed must be in \[0, 2\*\*32\), got -1$"),
    ({"seed": 2**32}, ValueError, r"^seed must be in \[0, 2\*\*32\), got 4294967296$"),
    ({"seed": 1.5}, TypeError, "^seed must be an int, got float$"),
    ({"seed": True}, TypeError, "^seed must be an int, got bool$"),
])
def test_digits_split_bad_inputs(kwargs, error, match):
    with pytest.raises(error, match=match):
        data.load_digits_split(**kwargs)


def test_scaling_helpers():
    x = torch.tensor([0.0, 0.25, 1.0])
    assert torch.allclose(data.to_symmetric(x), torch.tensor([-1.0, -0.5, 1.0]))
    assert torch.allclose(data.from_symmetric(data.to_symmetric(x)), x)
    assert torch.equal(data.from_symmetric(torch.tensor([-3.0, 2.0])), torch.tensor([0.0, 1.0]))  # clamped
    assert torch.allclose(data.to_unit(torch.tensor([0, 8, 16])), torch.tensor([0.0, 0.5, 1.0]))
    assert data.to_unit(torch.tensor([16], dtype=torch.uint8)).dtype == torch.float32
    with pytest.raises(TypeError, match="x"):
        data.to_symmetric(np.zeros(3))
    with pytest.raises(TypeError, match="x"):
        data.from_symmetric(torch.zeros(3, dtype=torch.long))
    with pytest.raises(TypeError, match="x"):
        data.to_unit([1, 2])
    with pytest.raises(ValueError, match="max_value"):
        data.to_unit(torch.zeros(2), max_value=0)


# ----------------------------------------------------------------------------------------------- 2D toys


@pytest.mark.parametrize("name", data.TOY_2D_NAMES)
def test_sample_2d_shape_and_determinism(name):
    x = data.sample_2d(name, 257, generator=torch.Generator().manual_seed(0))
    y = data.sample_2d(name, 257, generator=torch.Generator().manual_seed(0))
    z = data.sample_2d(name, 257, generator=torch.Generator().manual_seed(1))
    assert x.shape == (257, 2) and x.dtype == torch.float32
    assert torch.equal(x, y)
    assert not torch.equal(x, z)
    torch.manual_seed(5)
    g1 = data.sample_2d(name, 10)
    torch.manual_seed(5)
    assert torch.equal(g1, data.sample_2d(name, 10))  # global RNG without a generator


def test_ring8_and_grid25_geometry():
    gen = torch.Generator().manual_seed(0)
    ring = data.sample_2d("ring8", 2000, generator=gen)
    assert (ring.norm(dim=1) - 2.0).abs().max() < 0.2  # std 0.02 around radius 2
    angles = torch.atan2(ring[:, 1], ring[:, 0]) / (2 * math.pi / 8)
    assert (angles - angles.round()).abs().max() < 0.1  # close to multiples of 45 degrees
    grid = data.sample_2d("grid25", 2000, generator=gen)
    assert (grid - grid.round()).abs().max() < 0.4
    assert set(torch.unique(grid.round().long()).tolist()) == {-4, -2, 0, 2, 4}
    wide = data.sample_2d("ring8", 2000, generator=gen, noise=0.3)
    assert (wide.norm(dim=1) - 2.0).std() > 0.2  # noise sets the spread


def test_swiss_roll_and_moons_lie_on_their_curves_without_noise():
    gen = torch.Generator().manual_seed(0)
    roll = data.sample_2d("swiss_roll", 1000, generator=gen, noise=0.0)
    r = roll.norm(dim=1) * 5.0  # r = t on the spiral, t in [1.5 pi, 4.5 pi]
    assert r.min() >= 1.5 * math.pi - 1e-4 and r.max() <= 4.5 * math.pi + 1e-4
    # On the spiral the polar angle equals t (mod 2 pi).
    wrapped = torch.remainder(r - torch.atan2(roll[:, 1], roll[:, 0]) + math.pi, 2 * math.pi) - math.pi
    assert wrapped.abs().max() < 1e-3
    moons = data.sample_2d("two_moons", 1000, generator=gen, noise=0.0) + torch.tensor([0.5, 0.25])
    d_upper = (moons.norm(dim=1) - 1).abs()
    d_lower = ((moons - torch.tensor([1.0, 0.5])).norm(dim=1) - 1).abs()
    assert torch.minimum(d_upper, d_lower).max() < 1e-5
    upper = d_upper < 1e-5
    assert 0.4 < upper.float().mean() < 0.6  # the two moons are equally likely
    assert (moons[upper, 1] >= -1e-6).all() and (moons[~upper, 1] <= 0.5 + 1e-6).all()
    noisy = data.sample_2d("two_moons", 1000, generator=gen) + torch.tensor([0.5, 0.25])
    d_noisy_upper = (noisy.norm(dim=1) - 1).abs()
    d_noisy_lower = ((noisy - torch.tensor([1.0, 0.5])).norm(dim=1) - 1).abs()
    d = torch.minimum(d_noisy_upper, d_noisy_lower)
    assert d.mean() > 0.03


def test_sample_2d_bad_inputs():
    with pytest.raises(ValueError, match="ring8.*grid25.*swiss_roll.*two_moons"):
        data.sample_2d("ring9", 10)
    with pytest.raises(TypeError, match="name"):
        data.sample_2d(3, 10)
    with pytest.raises(ValueError, match="n must be >= 1"):
        data.sample_2d("ring8", 0)
    with pytest.raises(TypeError, match="n must be an int"):
        data.sample_2d("ring8", 2.0)
    with pytest.raises(TypeError, match="generator"):
        data.sample_2d("ring8", 2, generator=np.random.default_rng(0))
    with pytest.raises(ValueError, match="noise"):
        data.sample_2d("swiss_roll", 2, noise=-0.1)
    with pytest.raises(ValueError, match="noise"):
        data.sample_2d("ring8", 2, noise=0.0)  # a mixture needs std > 0
    with pytest.raises(TypeError, match="noise"):
        data.sample_2d("two_moons", 2, noise="0.1")


def _reference_mixture(mixture: data.GaussianMixture2D) -> torch.distributions.Distribution:
    D = torch.distributions
    comps = D.Independent(D.Normal(mixture.means.double(), mixture.std), 1)
    return D.MixtureSameFamily(D.Categorical(probs=mixture.weights.double()), comps)


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_mixture_log_prob_matches_torch_distributions(name):
    mixture = data.gaussian_mixture_2d(name)
    gen = torch.Generator().manual_seed(0)
    x = torch.cat([mixture.sample(300, generator=gen), 6 * torch.rand(50, 2, generator=gen) - 3]).double()
    ours = mixture.log_prob(x)
    assert ours.shape == (350,) and ours.dtype == torch.float64
    # atol: torch's Categorical renormalises the float32 weights, shifting log w by ~1e-8.
    assert torch.allclose(ours, _reference_mixture(mixture).log_prob(x), rtol=1e-9, atol=1e-7)
    ours32 = mixture.log_prob(x.float())
    assert ours32.dtype == torch.float32
    assert torch.allclose(ours32.double(), ours, rtol=1e-4, atol=1e-3)


def test_mixture_with_unequal_weights_samples_and_density():
    means = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    weights = torch.tensor([0.6, 0.3, 0.1])
    mixture = data.GaussianMixture2D(means, 0.4, weights)
    x = mixture.sample(20000, generator=torch.Generator().manual_seed(0))
    idx, _ = mixture.nearest(x)
    freq = torch.bincount(idx, minlength=3).float() / len(idx)
    assert torch.allclose(freq, weights, atol=0.02)
    grid = torch.randn(100, 2, generator=torch.Generator().manual_seed(1)) * 2
    reference = _reference_mixture(mixture).log_prob(grid.double())
    assert torch.allclose(mixture.log_prob(grid).double(), reference, atol=1e-4)
    # The density integrates to ~1 over a fine grid.
    ticks = torch.linspace(-3, 6, 301, dtype=torch.float64)
    gx, gy = torch.meshgrid(ticks, ticks, indexing="ij")
    pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    cell = float(ticks[1] - ticks[0]) ** 2
    assert abs(float(mixture.log_prob(pts).exp().sum()) * cell - 1.0) < 1e-3


def test_gaussian_mixture_2d_layouts():
    ring = data.gaussian_mixture_2d("ring8")
    assert ring.means.shape == (8, 2) and ring.std == 0.02
    assert torch.allclose(ring.means.norm(dim=1), torch.full((8,), 2.0))
    assert torch.allclose(ring.weights, torch.full((8,), 1 / 8))
    grid = data.gaussian_mixture_2d("grid25", std=0.1)
    assert grid.means.shape == (25, 2) and grid.std == 0.1
    ticks = range(-4, 5, 2)
    assert {tuple(p) for p in grid.means.long().tolist()} == {(a, b) for a in ticks for b in ticks}
    with pytest.raises(ValueError, match="ring8.*grid25"):
        data.gaussian_mixture_2d("swiss_roll")
    with pytest.raises(TypeError, match="name"):
        data.gaussian_mixture_2d(None)
    with pytest.raises(ValueError, match="std"):
        data.gaussian_mixture_2d("ring8", std=-1.0)


def test_gaussian_mixture_validation():
    with pytest.raises(ValueError, match="means"):
        data.GaussianMixture2D(torch.zeros(3, 3), 1.0, torch.full((3,), 1 / 3))
    with pytest.raises(TypeError, match="means"):
        data.GaussianMixture2D([[0.0, 0.0]], 1.0, torch.ones(1))
    with pytest.raises(TypeError, match="weights"):
        data.GaussianMixture2D(torch.zeros(1, 2), 1.0, [1.0])
    with pytest.raises(ValueError, match="std"):
        data.GaussianMixture2D(torch.zeros(3, 2), 0.0, torch.full((3,), 1 / 3))
    with pytest.raises(ValueError, match="weights"):
        data.GaussianMixture2D(torch.zeros(3, 2), 1.0, torch.full((2,), 0.5))
    with pytest.raises(ValueError, match="sum to 1"):
        data.GaussianMixture2D(torch.zeros(3, 2), 1.0, torch.ones(3))
    with pytest.raises(ValueError, match="sum to 1"):
        data.GaussianMixture2D(torch.zeros(2, 2), 1.0, torch.tensor([float("nan"), 0.5]))
    with pytest.raises(TypeError, match="means"):
        data.GaussianMixture2D.uniform([[0.0, 0.0]], 1.0)
    assert torch.equal(data.GaussianMixture2D.uniform(torch.zeros(4, 2), 1.0).weights, torch.full((4,), 0.25))
    mixture = data.gaussian_mixture_2d("ring8")
    with pytest.raises(ValueError, match=r"x must have shape \(N, 2\)"):
        mixture.log_prob(torch.zeros(4, 3))
    with pytest.raises(TypeError, match="x"):
        mixture.log_prob(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="n must be >= 1"):
        mixture.sample(0)


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_modes_covered_and_quality(name):
    mixture = data.gaussian_mixture_2d(name)
    gen = torch.Generator().manual_seed(0)
    full = mixture.sample(5000, generator=gen)
    assert data.modes_covered(full, mixture) == mixture.num_components
    hq = data.high_quality_fraction(full, mixture)
    assert abs(hq - (1 - math.exp(-4.5))) < 0.01  # P(|z| <= 3) for a 2D standard normal
    one_mode = mixture.means[3] + mixture.std * torch.randn(1000, 2, generator=gen)
    assert data.modes_covered(one_mode, mixture) == 1
    assert data.high_quality_fraction(one_mode, mixture) > 0.97
    # Points halfway between modes are neither covering nor high quality.
    between = (mixture.means[0] + mixture.means[1]) / 2 + torch.zeros(100, 2)
    assert data.modes_covered(between, mixture) == 0
    assert data.high_quality_fraction(between, mixture) == 0.0


def test_modes_covered_min_fraction_rule():
    mixture = data.gaussian_mixture_2d("ring8")
    samples = torch.cat([mixture.means[:1].expand(1, 2), mixture.means[1:2].expand(999, 2)])
    assert data.modes_covered(samples, mixture) == 1  # 1 of 1000 samples is below the 1 % threshold
    assert data.modes_covered(samples, mixture, min_fraction=0.0) == 2
    assert data.modes_covered(samples, mixture, min_fraction=0.001) == 2
    # A looser radius lets a nearby sample count.
    off = mixture.means[:1] + torch.tensor([[4 * mixture.std, 0.0]])
    assert data.modes_covered(off, mixture) == 0
    assert data.modes_covered(off, mixture, max_std=5.0) == 1


def test_mode_metrics_bad_inputs():
    mixture = data.gaussian_mixture_2d("ring8")
    with pytest.raises(ValueError, match="samples"):
        data.modes_covered(torch.zeros(5, 3), mixture)
    with pytest.raises(ValueError, match="samples"):
        data.high_quality_fraction(torch.zeros(0, 2), mixture)
    with pytest.raises(TypeError, match="mixture"):
        data.modes_covered(torch.zeros(5, 2), "ring8")
    with pytest.raises(ValueError, match="max_std"):
        data.high_quality_fraction(torch.zeros(5, 2), mixture, max_std=0)
    with pytest.raises(ValueError, match="min_fraction"):
        data.modes_covered(torch.zeros(5, 2), mixture, min_fraction=2.0)


# ----------------------------------------------------------------------------------------------- text


def test_docs_corpus_is_ascii_normalised_and_deterministic():
    text = data.docs_corpus()
    text_module._full_docs_corpus.cache_clear()
    assert data.docs_corpus() == text
    assert len(text) > 300_000
    assert text.isascii()
    assert all(ch == "\n" or 32 <= ord(ch) < 127 for ch in set(text))
    assert "\n\n\n" not in text
    for line in text.split("\n"):
        assert line == line.rstrip()
        assert "  " not in line.lstrip(" ")  # only leading indentation may have runs of spaces
    assert text.startswith('The "assert" statement')  # "assert" is the first topic key in sorted order
    assert data.docs_corpus(max_chars=1000) == text[:1000]


def test_docs_corpus_normalisation_on_known_topics(monkeypatch):
    from pydoc_data import topics as topics_module

    fake = {
        "zeta": "Last\ttopic  \n",
        "alpha": "\u201cQuoted\u201d \u2014 it\u2019s caf\u00e9\u2026\n\n\n\n   if x:\n\t  y  =  1   \n\n",
    }
    monkeypatch.setattr(topics_module, "topics", fake)
    text_module._full_docs_corpus.cache_clear()
    try:
        got = data.docs_corpus()
    finally:
        text_module._full_docs_corpus.cache_clear()
    assert got == "\"Quoted\" -- it's cafe...\n\n   if x:\n      y = 1\n\nLast topic\n"


def test_docs_corpus_bad_inputs():
    with pytest.raises(ValueError, match="max_chars"):
        data.docs_corpus(max_chars=0)
    with pytest.raises(TypeError, match="max_chars"):
        data.docs_corpus(max_chars=10.0)


def test_train_val_split_text():
    text = data.docs_corpus(max_chars=10_001)
    train, val = data.train_val_split_text(text)
    assert train + val == text
    assert len(val) == round(0.1 * len(text))
    train, val = data.train_val_split_text("ab", val_fraction=0.01)
    assert (train, val) == ("a", "b")  # both parts non-empty
    with pytest.raises(ValueError, match="val_fraction"):
        data.train_val_split_text(text, val_fraction=1.0)
    with pytest.raises(TypeError, match="val_fraction"):
        data.train_val_split_text(text, val_fraction="0.1")
    with pytest.raises(TypeError, match="text"):
        data.train_val_split_text(b"abc")
    with pytest.raises(ValueError, match="text"):
        data.train_val_split_text("a")


def test_char_vocab_round_trip():
    text = data.docs_corpus(max_chars=20_000)
    vocab = data.CharVocab.from_text(text)
    assert list(vocab.itos.values()) == sorted(set(text))
    assert len(vocab) == len(set(text))
    assert all(vocab.itos[vocab.stoi[ch]] == ch for ch in vocab.stoi)
    ids = vocab.encode(text)
    assert ids.dtype == torch.long and ids.shape == (len(text),)
    assert int(ids.min()) >= 0 and int(ids.max()) == len(vocab) - 1
    assert vocab.decode(ids) == text
    assert vocab.decode(ids.tolist()[:50]) == text[:50]
    assert vocab.decode(ids[:20].numpy()) == text[:20]  # numpy ints are ints too
    assert vocab.encode("").shape == (0,)
    assert vocab == data.CharVocab.from_text(text[::-1])
    small = data.CharVocab.from_text("hello")
    assert small.encode("hello").tolist() == [1, 0, 2, 2, 3]  # sorted: e h l o
    assert "size=4" in repr(small)
    assert small != vocab
    ring = data.gaussian_mixture_2d("ring8")
    assert ring == ring and ring != data.gaussian_mixture_2d("ring8")  # identity, no tensor truth-value error


def test_char_vocab_errors():
    vocab = data.CharVocab.from_text("abc")
    with pytest.raises(ValueError, match="'z'"):
        vocab.encode("abz")
    with pytest.raises(TypeError, match="text"):
        vocab.encode(["a"])
    with pytest.raises(ValueError, match="id 3"):
        vocab.decode([0, 3])
    with pytest.raises(ValueError, match="1-D"):
        vocab.decode(torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(TypeError, match="integer"):
        vocab.decode(torch.zeros(2))
    with pytest.raises(TypeError, match="ids"):
        vocab.decode("ab")
    with pytest.raises(ValueError, match="empty"):
        data.CharVocab.from_text("")
    with pytest.raises(TypeError, match="text"):
        data.CharVocab.from_text(None)
    with pytest.raises(ValueError, match="repeat"):
        data.CharVocab(["a", "a"])
    with pytest.raises(ValueError, match="single characters"):
        data.CharVocab(["ab"])


# ----------------------------------------------------------------------------------------------- downloads


@contextlib.contextmanager
def _serving(handler: type[http.server.BaseHTTPRequestHandler]):
    """Serve ``handler`` on a loopback port in a thread; yields the base URL ``http://127.0.0.1:PORT``."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def server():
    """A loopback HTTP server: ``files`` maps URL paths to bytes, ``hits`` counts GET requests per path."""
    files: dict[str, bytes] = {}
    hits: collections.Counter[str] = collections.Counter()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            hits[self.path] += 1
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    with _serving(Handler) as base:
        yield SimpleNamespace(base=base, files=files, hits=hits)


def _register(monkeypatch, name: str, payload: bytes) -> data.DatasetEntry:
    """Point the registry entry ``name`` at the hash of ``payload``."""
    entry = dataclasses.replace(data.DATASETS[name], sha256=hashlib.sha256(payload).hexdigest())
    monkeypatch.setitem(data.DATASETS, name, entry)
    return entry


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fetch_downloads_once_then_reuses_cache(server, monkeypatch, tmp_path):
    payload = b"First Citizen:\nBefore we proceed any further, hear me speak.\n" * 50
    entry = _register(monkeypatch, "tiny-shakespeare", payload)
    server.files["/shakespeare.txt"] = payload
    url = server.base + "/shakespeare.txt"
    path = data.fetch("tiny-shakespeare", url=url)
    assert path == tmp_path / "cache" / entry.filename
    assert path.read_bytes() == payload
    assert server.hits["/shakespeare.txt"] == 1
    assert data.fetch("tiny-shakespeare", url=url) == path
    assert server.hits["/shakespeare.txt"] == 1  # cached with the right hash: not downloaded again
    assert data.cached_datasets()["tiny-shakespeare"] is True
    assert data.cached_datasets()["mnist-train-images"] is False
    assert data.load_tiny_shakespeare() == payload.decode()
    assert server.hits["/shakespeare.txt"] == 1


def test_fetch_uses_mirror_env_and_data_dir(server, monkeypatch, tmp_path):
    payload = b"\x00\x01mirror bytes" * 10
    entry = _register(monkeypatch, "mnist-test-labels", payload)
    server.files["/mirror/" + entry.filename] = payload
    monkeypatch.setenv("AIGC_DATA_URL", server.base + "/mirror/")
    path = data.fetch("mnist-test-labels", data_dir=tmp_path / "elsewhere")
    assert path == tmp_path / "elsewhere" / "mnist" / "t10k-labels-idx1-ubyte.gz"
    assert path.read_bytes() == payload
    assert server.hits["/mirror/mnist/t10k-labels-idx1-ubyte.gz"] == 1
    assert data.cached_datasets(tmp_path / "elsewhere")["mnist-test-labels"] is True
    assert data.cached_datasets()["mnist-test-labels"] is False


def test_fetch_replaces_a_corrupted_cached_file(server, monkeypatch, tmp_path):
    payload = b"good bytes" * 100
    entry = _register(monkeypatch, "tiny-shakespeare", payload)
    target = tmp_path / "cache" / entry.filename
    target.parent.mkdir(parents=True)
    target.write_bytes(b"truncated")
    server.files["/f"] = payload
    assert data.fetch("tiny-shakespeare", url=server.base + "/f").read_bytes() == payload
    assert server.hits["/f"] == 1


def test_fetch_hash_mismatch_raises_and_removes_file(server, monkeypatch, tmp_path):
    entry = _register(monkeypatch, "tiny-shakespeare", b"what the registry expects")
    server.files["/bad"] = b"something else entirely"
    with pytest.raises(data.DatasetUnavailableError, match="did not match its SHA-256") as info:
        data.fetch("tiny-shakespeare", url=server.base + "/bad")
    target = tmp_path / "cache" / entry.filename
    message = str(info.value)
    assert "removed" in message and str(target) in message
    assert not target.exists()
    assert not any(p.is_file() for p in target.parent.iterdir())  # no temporary file left behind
    assert isinstance(info.value, RuntimeError)


def test_fetch_unreachable_host_gives_helpful_error(monkeypatch, tmp_path):
    entry = _register(monkeypatch, "fashion-mnist-train-labels", b"never served")
    url = f"http://127.0.0.1:{_closed_port()}/train-labels-idx1-ubyte.gz"
    with pytest.raises(data.DatasetUnavailableError) as info:
        data.fetch("fashion-mnist-train-labels", url=url)
    message = str(info.value)
    target = tmp_path / "cache" / entry.filename
    assert url in message
    assert f"The file should be at: {target}" in message
    assert "AIGC_DATA_DIR" in message and "AIGC_DATA_URL" in message and "by hand" in message
    assert not target.exists()


def test_fetch_http_404_is_unavailable(server, monkeypatch):
    _register(monkeypatch, "tiny-shakespeare", b"x")
    with pytest.raises(data.DatasetUnavailableError, match="Could not download 'tiny-shakespeare'"):
        data.fetch("tiny-shakespeare", url=server.base + "/missing.txt")
    assert server.hits["/missing.txt"] == 1


def test_fetch_bad_inputs():
    with pytest.raises(ValueError, match="mnist-train-images.*tiny-shakespeare"):
        data.fetch("cifar10")
    with pytest.raises(TypeError, match="name"):
        data.fetch(7)
    with pytest.raises(TypeError, match="data_dir"):
        data.fetch("tiny-shakespeare", data_dir=3)
    with pytest.raises(TypeError, match="url"):
        data.fetch("tiny-shakespeare", url=b"http://x")
    with pytest.raises(TypeError, match="data_dir"):
        data.cached_datasets(data_dir=1.5)


def test_registry_entries_are_well_formed():
    expected = {f"{p}-{s}-{k}" for p in ("mnist", "fashion-mnist") for s in ("train", "test")
                for k in ("images", "labels")} | {"tiny-shakespeare"}
    assert set(data.DATASETS) == expected
    for entry in data.DATASETS.values():
        assert len(entry.sha256) == 64 and int(entry.sha256, 16) >= 0
        assert entry.url.startswith("https://") and entry.url.endswith("/" + Path(entry.filename).name)
        assert entry.description
    assert len({e.filename for e in data.DATASETS.values()}) == len(data.DATASETS)
    assert len({e.sha256 for e in data.DATASETS.values()}) == len(data.DATASETS)


def test_load_tiny_shakespeare_local_path(monkeypatch, tmp_path):
    local = tmp_path / "input.txt"
    local.write_text("To be, or not to be\n")
    with pytest.raises(data.DatasetUnavailableError, match="SHA-256"):
        data.load_tiny_shakespeare(local)
    assert local.exists()  # a user's own file is never deleted
    _register(monkeypatch, "tiny-shakespeare", local.read_bytes())
    assert data.load_tiny_shakespeare(str(local)) == "To be, or not to be\n"
    with pytest.raises(FileNotFoundError, match="path"):
        data.load_tiny_shakespeare(tmp_path / "nope.txt")
    with pytest.raises(TypeError, match="path"):
        data.load_tiny_shakespeare(42)


def test_load_tiny_shakespeare_offline_raises(monkeypatch):
    monkeypatch.setenv("AIGC_DATA_URL", f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(data.DatasetUnavailableError, match="tinyshakespeare/input.txt"):
        data.load_tiny_shakespeare()


@pytest.mark.skipif(not SHARED_SHAKESPEARE.is_file(), reason="no shared copy of tinyshakespeare.txt")
def test_shared_tiny_shakespeare_passes_hash_check():
    text = data.load_tiny_shakespeare(SHARED_SHAKESPEARE)
    assert len(text) == 1_115_394
    assert text.startswith("First Citizen:")


class TestDownloadFaults:
    """Bad mirror addresses name the variable; the timeout is a total deadline, also for a trickling server."""

    @pytest.mark.parametrize("value", ["ftp.example.org/aigc", "file:///tmp/mirror", "https://", "http:/x",
                                       "https://my mirror/aigc", "http://host:notaport/x", "http://[::1/x"])
    def test_a_bad_mirror_variable_is_named(self, monkeypatch, value):
        monkeypatch.setenv("AIGC_DATA_URL", value)
        with pytest.raises(ValueError) as info:
            data.fetch("tiny-shakespeare")
        message = str(info.value)
        assert message.startswith("environment variable AIGC_DATA_URL (a mirror's base address) must be an "
                                  "http:// or https:// address") and repr(value) in message

    @pytest.mark.parametrize("value", ["/local/path.txt", "ftp://x/y", "https:///nohost"])
    def test_a_bad_url_argument_is_named(self, value):
        with pytest.raises(ValueError, match=r"^url must be an http:// or https:// address") as info:
            data.fetch("tiny-shakespeare", url=value)
        assert repr(value) in str(info.value)

    def test_a_blank_mirror_variable_means_the_default_mirror(self, monkeypatch):
        monkeypatch.setenv("AIGC_DATA_URL", "   ")
        from aigc_course.data.downloads import _source_url

        entry = data.DATASETS["tiny-shakespeare"]
        assert _source_url(entry, None) == entry.url
        monkeypatch.setenv("AIGC_DATA_URL", " https://m.example/base/ ")
        assert _source_url(entry, None) == "https://m.example/base/tinyshakespeare/input.txt"

    @pytest.mark.parametrize("timeout", [0, -1, math.inf, math.nan, "5", True])
    def test_bad_timeouts(self, timeout):
        with pytest.raises(ValueError, match="timeout must be a positive finite number"):
            data.fetch("tiny-shakespeare", url="http://127.0.0.1:1/x", timeout=timeout)

    @pytest.fixture
    def trickle(self):
        """A loopback server that promises 1000 bytes, then sends one byte every 0.5 s (20 at most)."""
        stop = threading.Event()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                self.wfile.flush()
                for _ in range(20):
                    if stop.wait(0.5):
                        return
                    try:
                        self.wfile.write(b"x")
                        self.wfile.flush()
                    except OSError:
                        return

            def log_message(self, *args):
                pass

        with _serving(Handler) as base:
            try:
                yield f"{base}/slow"
            finally:
                stop.set()  # before the server shuts down: a handler still trickling returns at once

    def test_a_trickling_server_is_stopped_at_the_deadline(self, trickle, monkeypatch, tmp_path):
        """Each read gets a byte well within 1 s, so only a total deadline can stop this download."""
        entry = _register(monkeypatch, "tiny-shakespeare", b"y" * 1000)
        start = time.monotonic()
        with pytest.raises(data.DatasetUnavailableError) as info:
            data.fetch("tiny-shakespeare", url=trickle, timeout=1)
        elapsed = time.monotonic() - start
        assert 0.9 <= elapsed < 2.5, elapsed
        message = str(info.value)
        assert "TimeoutError: the download did not finish within its 1 s deadline" in message
        target = tmp_path / "cache" / entry.filename
        assert not target.exists() and not any(p.is_file() for p in target.parent.iterdir())

    def test_the_default_deadline_is_used(self, trickle, monkeypatch):
        _register(monkeypatch, "tiny-shakespeare", b"y" * 1000)
        monkeypatch.setattr(data.downloads, "DOWNLOAD_TIMEOUT_S", 0.5)
        start = time.monotonic()
        with pytest.raises(data.DatasetUnavailableError, match="within its 0.5 s deadline"):
            data.fetch("tiny-shakespeare", url=trickle)
        assert time.monotonic() - start < 2.0

    def test_a_full_download_within_the_deadline_passes(self, server, monkeypatch):
        payload = bytes(range(256)) * 300
        _register(monkeypatch, "tiny-shakespeare", payload)
        server.files["/ok"] = payload
        assert data.fetch("tiny-shakespeare", url=server.base + "/ok", timeout=5).read_bytes() == payload


# ----------------------------------------------------------------------------------------------- idx / MNIST


def _idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def test_read_idx_gz_and_plain(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    path = tmp_path / "imgs-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(_idx_bytes(images)))
    got = data.read_idx(path, magic=data.IDX_IMAGES_MAGIC)
    assert got.dtype == torch.uint8 and got.shape == (3, 28, 28)
    assert torch.equal(got, torch.from_numpy(images))
    ints = np.arange(-6, 6, dtype=np.int32).reshape(3, 4) * 1000
    plain = tmp_path / "ints.idx"
    plain.write_bytes(_idx_bytes(ints, code=0x0C))
    got = data.read_idx(plain)
    assert got.dtype == torch.int32 and torch.equal(got, torch.from_numpy(ints))


class TestReadIdxFaults:
    """Every broken file gives a ValueError that names it; never a raw gzip, zlib or struct error."""

    def _labels(self) -> bytes:
        return _idx_bytes(np.arange(10, dtype=np.uint8))

    def _refused(self, path, match: str, **kwargs) -> str:
        with pytest.raises(ValueError, match=match) as info:
            data.read_idx(path, **kwargs)
        assert str(info.value).startswith(str(path))
        return str(info.value)

    def test_wrong_magic_and_sizes(self, tmp_path):
        path = tmp_path / "labels.gz"
        path.write_bytes(gzip.compress(self._labels()))
        self._refused(path, r"magic number 0x00000801, expected 0x00000803$", magic=data.IDX_IMAGES_MAGIC)
        bad = tmp_path / "bad.idx"
        for header in (b"\x01\x00\x08\x01", b"\x00\x01\x08\x01", b"\x00\x00\x07\x01", b"\x00\x00\x08\x00"):
            bad.write_bytes(header + struct.pack(">I", 2) + b"ab")
            self._refused(bad, "is not an IDX file: bad magic number 0x")
        short = tmp_path / "short.idx"
        short.write_bytes(self._labels()[:-1])
        self._refused(short, r"header says shape \(10,\) \(10 bytes of data\), file holds 9$")
        long = tmp_path / "long.idx"
        long.write_bytes(self._labels() + b"\x00")
        self._refused(long, "file holds 11$")
        tiny = tmp_path / "tiny.idx"
        tiny.write_bytes(b"\x00\x00")
        self._refused(tiny, r"is too short to be an IDX file \(2 bytes\)")
        header_only = tmp_path / "header.idx"
        header_only.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">I", 5))
        self._refused(header_only, r"truncated IDX header \(8 bytes, the 3 sizes need 16\)")
        with pytest.raises(TypeError, match="path"):
            data.read_idx(123)
        with pytest.raises(TypeError, match="magic must be an int or None, got str"):
            data.read_idx(path, magic="2049")

    def test_absurd_header_sizes_do_not_overflow(self, tmp_path):
        path = tmp_path / "huge.idx"
        path.write_bytes(b"\x00\x00\x0e\x04" + struct.pack(">4I", *[2**32 - 1] * 4) + b"\x00" * 8)
        message = self._refused(path, "header says shape")
        assert f"({(2**32 - 1) ** 4 * 8} bytes of data)" in message

    @given(cut=st.integers(1, 200))
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                     HealthCheck.differing_executors])
    def test_truncated_gzip_is_refused(self, tmp_path, cut):
        packed = gzip.compress(_idx_bytes(np.arange(300, dtype=np.uint8).reshape(3, 10, 10)))
        assume(cut < len(packed) - 2)
        path = tmp_path / "cut.gz"
        path.write_bytes(packed[:-cut])
        self._refused(path, "not a valid gzip file, truncated or corrupt")

    @given(noise=st.binary(min_size=1, max_size=64))
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                     HealthCheck.differing_executors])
    def test_garbage_after_the_gzip_signature_is_refused(self, tmp_path, noise):
        path = tmp_path / "garbage.gz"
        path.write_bytes(b"\x1f\x8b" + noise)
        self._refused(path, "not a valid gzip file, truncated or corrupt")

    def test_a_gzip_bomb_is_refused(self, tmp_path, monkeypatch):
        monkeypatch.setattr(data.downloads, "MAX_IDX_BYTES", 1000)
        path = tmp_path / "bomb.gz"
        path.write_bytes(gzip.compress(b"\x00" * 5000))
        self._refused(path, "decompresses to more than 1000 bytes")
        path.write_bytes(gzip.compress(self._labels()))  # 18 bytes: fine
        assert data.read_idx(path).tolist() == list(range(10))


def _write_mnist(root: Path, monkeypatch, prefix: str, split: str, n_images: int, n_labels: int):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(n_images, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=(n_labels,), dtype=np.uint8)
    for kind, array in (("images", images), ("labels", labels)):
        payload = gzip.compress(_idx_bytes(array))
        entry = _register(monkeypatch, f"{prefix}-{split}-{kind}", payload)
        (root / entry.filename).parent.mkdir(parents=True, exist_ok=True)
        (root / entry.filename).write_bytes(payload)
    return images, labels


@pytest.mark.parametrize(("fashion", "split"), [(False, "train"), (True, "test")])
def test_load_mnist_from_cache(monkeypatch, tmp_path, fashion, split):
    prefix = "fashion-mnist" if fashion else "mnist"
    images, labels = _write_mnist(tmp_path / "d", monkeypatch, prefix, split, 5, 5)
    monkeypatch.setenv("AIGC_DATA_URL", f"http://127.0.0.1:{_closed_port()}")  # any download would fail
    x, y = data.load_mnist(split, fashion=fashion, data_dir=tmp_path / "d")
    assert x.dtype == torch.uint8 and x.shape == (5, 28, 28)
    assert y.dtype == torch.int64 and y.shape == (5,)
    assert torch.equal(x, torch.from_numpy(images)) and torch.equal(y, torch.from_numpy(labels).long())


def test_load_mnist_bad_inputs(monkeypatch, tmp_path):
    _write_mnist(tmp_path, monkeypatch, "mnist", "train", 4, 3)
    with pytest.raises(ValueError, match="4 images but 3 labels"):
        data.load_mnist("train", data_dir=tmp_path)
    with pytest.raises(ValueError, match="split"):
        data.load_mnist("val")
    with pytest.raises(TypeError, match="fashion"):
        data.load_mnist("train", fashion="yes")


def test_first_digits_load_leaves_the_global_rngs_alone():
    """Importing sklearn.datasets draws from Python's `random`; a lesson seeded before loading must not shift."""
    import subprocess
    import sys

    code = ("import random, numpy as np, torch\n"
            "random.seed(3); np.random.seed(3); torch.manual_seed(3)\n"
            "states = (random.getstate(), np.random.get_state()[1].tolist(), torch.get_rng_state())\n"
            "from aigc_course.data.digits import load_digits_split\n"
            "load_digits_split()\n"
            "after = (random.getstate(), np.random.get_state()[1].tolist(), torch.get_rng_state())\n"
            "assert states[0] == after[0] and states[1] == after[1] and torch.equal(states[2], after[2])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
