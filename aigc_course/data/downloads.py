"""Hash-checked downloads (MNIST, Fashion-MNIST, Tiny Shakespeare) through pooch, cached on disk.

Each registry entry names a file relative to the cache folder (``aigc_course.config.cache_dir()``, set by
``AIGC_DATA_DIR``); ``fetch`` downloads it once from its mirror, checks its SHA-256 and then only reads the
cached copy. ``AIGC_DATA_URL=https://my.mirror/aigc`` makes every file come from ``<base>/<filename>``
instead (e.g. ``<base>/mnist/train-images-idx3-ubyte.gz``). Addresses are http:// or https://.
A download must finish within ``DOWNLOAD_TIMEOUT_S`` seconds in total (a stalled or trickling server is
stopped at that deadline, not only when a single read stalls).

Mirrors: MNIST from PyTorch's S3 copy (``ossci-datasets``; the original yann.lecun.com no longer serves
it), Fashion-MNIST from the Zalando Research GitHub repository, Tiny Shakespeare from karpathy/char-rnn.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import math
import os
import struct
import time
import zlib
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import torch

from .. import config

DATA_URL_ENV = "AIGC_DATA_URL"
DOWNLOAD_TIMEOUT_S = 600  # total seconds for one file (MNIST's largest is 9.9 MB)
MAX_IDX_BYTES = 1 << 30  # an IDX file larger than 1 GiB once decompressed is refused (MNIST: 47 MB)

_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_FASHION_URL = "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"
_SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"

log = logging.getLogger(__name__)


class DatasetUnavailableError(RuntimeError):
    """A data set could not be downloaded or failed its hash check; the message says how to fix it."""


@dataclass(frozen=True)
class DatasetEntry:
    """One downloadable file: where it comes from, its SHA-256, and its path inside the cache folder."""

    url: str
    sha256: str
    description: str
    filename: str


def _idx_entries(prefix: str, base_url: str, label: str, hashes: dict[str, str]) -> dict[str, DatasetEntry]:
    parts = {"train-images": "train-images-idx3-ubyte.gz", "train-labels": "train-labels-idx1-ubyte.gz",
             "test-images": "t10k-images-idx3-ubyte.gz", "test-labels": "t10k-labels-idx1-ubyte.gz"}
    return {
        f"{prefix}-{part}": DatasetEntry(
            url=base_url + fname, sha256=hashes[fname], filename=f"{prefix}/{fname}",
            description=f"{label} {part.replace('-', ' ')} (idx format, gzip)",
        )
        for part, fname in parts.items()
    }


# SHA-256 sums of the files at these mirrors, each cross-checked against several independent public
# registries of the same files (dataset loaders in other projects that pin the same hashes).
DATASETS: dict[str, DatasetEntry] = {
    **_idx_entries("mnist", _MNIST_URL, "MNIST", {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    }),
    **_idx_entries("fashion-mnist", _FASHION_URL, "Fashion-MNIST", {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    }),
    "tiny-shakespeare": DatasetEntry(
        url=_SHAKESPEARE_URL,
        sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        description="Tiny Shakespeare: 1.1 MB of plays as plain text (karpathy/char-rnn)",
        filename="tinyshakespeare/input.txt",
    ),
}


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _entry(name: object) -> DatasetEntry:
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if name not in DATASETS:
        raise ValueError(f"unknown data set name {name!r}; valid names: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


def _data_root(data_dir: object) -> Path:
    if data_dir is None:
        return config.cache_dir()
    if not isinstance(data_dir, (str, os.PathLike)):
        raise TypeError(f"data_dir must be a str, a path or None, got {type(data_dir).__name__}")
    return Path(data_dir).expanduser()


def _check_url(value: str, name: str) -> str:
    """``value`` if it is an http(s) address with a host; ValueError naming ``name`` otherwise."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError as e:
        raise ValueError(f"{name} must be an http:// or https:// address, got {value!r} ({e})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in value):
        raise ValueError(f"{name} must be an http:// or https:// address with a host name and no spaces, such "
                         f"as https://my.mirror/aigc, got {value!r}")
    return value


def _source_url(entry: DatasetEntry, url: object) -> str:
    if url is not None:
        if not isinstance(url, str):
            raise TypeError(f"url must be a str or None, got {type(url).__name__}")
        return _check_url(url, "url")
    base = os.environ.get(DATA_URL_ENV, "").strip()
    if base:
        _check_url(base, f"environment variable {DATA_URL_ENV} (a mirror's base address)")
        return base.rstrip("/") + "/" + entry.filename
    return entry.url


class _DeadlineDownloader:
    """A pooch downloader whose ``timeout_s`` bounds the whole download, not each read.

    The socket timeout is set to the time left before every read, so a server that trickles bytes is cut
    off at the deadline; TimeoutError (an OSError) says so.
    """

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s

    def __call__(self, url: str, output_file: str | io.IOBase, pooch_instance: object = None,
                 check_only: bool = False) -> None:
        import requests
        import urllib3

        deadline = time.monotonic() + self.timeout_s
        late = TimeoutError(f"the download did not finish within its {self.timeout_s:g} s deadline (the "
                            "total time allowed for one file); the server is stalled or too slow")

        def time_left() -> float:
            left = deadline - time.monotonic()
            if left <= 0:
                raise late
            return left

        try:
            with requests.get(url, stream=True, timeout=time_left()) as response:
                response.raise_for_status()
                sock = getattr(getattr(response.raw, "connection", None), "sock", None)
                out = output_file if hasattr(output_file, "write") else open(output_file, "wb")  # noqa: SIM115
                try:
                    while True:
                        left = time_left()
                        if sock is not None:
                            sock.settimeout(left)  # a read may wait only for the time that is left
                        chunk = response.raw.read1(1 << 16, decode_content=True)
                        if not chunk:
                            break
                        out.write(chunk)
                finally:
                    if out is not output_file:
                        out.close()
        except (urllib3.exceptions.HTTPError, requests.exceptions.Timeout, TimeoutError) as e:
            if e is late or time.monotonic() >= deadline:
                raise late from (None if e is late else e)
            raise OSError(f"{type(e).__name__}: {e}") from e  # urllib3's errors are not OSErrors


def _how_to_fix(entry: DatasetEntry, source: str, target: Path) -> str:
    return (f"The file should be at: {target}\n"
            f"To fix it, download {source} by hand and save it as {target}, or set {config.CACHE_ENV} to a "
            f"folder that already holds {entry.filename}, or set {DATA_URL_ENV} to a reachable mirror that "
            f"serves <base>/{entry.filename}.")


def fetch(name: str, *, data_dir: str | os.PathLike | None = None, url: str | None = None,
          timeout: float | None = None) -> Path:
    """Path of the registry file ``name`` (a key of ``DATASETS``), downloading it on first use.

    ``data_dir`` overrides the cache folder, ``url`` the download address (the SHA-256 is checked either
    way), ``timeout`` the total seconds a download may take (default ``DOWNLOAD_TIMEOUT_S``). A cached file
    with the right hash is never downloaded again; one with a wrong hash is removed and downloaded afresh.
    Raises ``DatasetUnavailableError`` when the download fails, runs past the deadline or the hash does not
    match.
    """
    import pooch

    entry = _entry(name)
    target = _data_root(data_dir) / entry.filename
    source = _source_url(entry, url)
    if timeout is None:
        timeout = DOWNLOAD_TIMEOUT_S
    if isinstance(timeout, bool) or not isinstance(timeout, Real) or not 0 < timeout < math.inf:
        raise ValueError(f"timeout must be a positive finite number of seconds or None, got {timeout!r}")
    if target.is_file():
        if sha256_file(target) == entry.sha256:
            return target
        log.warning("cached %s does not match its SHA-256; removing it and downloading again", target)
        target.unlink()

    try:
        pooch.retrieve(
            source, known_hash=f"sha256:{entry.sha256}", fname=target.name, path=target.parent,
            downloader=_DeadlineDownloader(float(timeout)),
        )
    except ValueError as err:  # pooch's hash check; it deletes the temporary download itself
        raise DatasetUnavailableError(
            f"The file downloaded for {name!r} from {source} did not match its SHA-256 hash "
            f"(expected {entry.sha256}); the bad download was removed and nothing was saved. The mirror may "
            f"serve a different or truncated file ({err}).\n" + _how_to_fix(entry, source, target)
        ) from err
    except OSError as err:  # requests' exceptions derive from OSError; so do disk errors
        raise DatasetUnavailableError(
            f"Could not download {name!r} ({entry.description}) from {source}: {type(err).__name__}: {err}\n"
            + _how_to_fix(entry, source, target)
        ) from err
    return target


def cached_datasets(data_dir: str | os.PathLike | None = None) -> dict[str, bool]:
    """Which registry files are already in the cache folder (presence only, hashes are checked on use)."""
    root = _data_root(data_dir)
    return {name: (root / entry.filename).is_file() for name, entry in DATASETS.items()}


def load_tiny_shakespeare(path: str | os.PathLike | None = None) -> str:
    """The Tiny Shakespeare text (1,115,394 chars), from the cache (downloaded once) or a local ``path``.

    A local file must have the registry's SHA-256 too; otherwise ``DatasetUnavailableError`` is raised and
    the file is left alone.
    """
    entry = DATASETS["tiny-shakespeare"]
    if path is None:
        file = fetch("tiny-shakespeare")
    else:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str, a path or None, got {type(path).__name__}")
        file = Path(path).expanduser()
        if not file.is_file():
            raise FileNotFoundError(f"path {file} does not exist (expected the Tiny Shakespeare input.txt)")
        actual = sha256_file(file)
        if actual != entry.sha256:
            raise DatasetUnavailableError(
                f"{file} is not the expected Tiny Shakespeare file: its SHA-256 is {actual}, expected "
                f"{entry.sha256}. Delete or replace it with a fresh copy of {entry.url}, or pass path=None "
                "to use the cached download."
            )
    return file.read_bytes().decode("utf-8")


# IDX format (LeCun): magic = 0x00 0x00 <type code> <ndim>, then ndim big-endian uint32 sizes, then data.
_IDX_DTYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
IDX_IMAGES_MAGIC = 0x00000803  # 2051: uint8, 3 dimensions
IDX_LABELS_MAGIC = 0x00000801  # 2049: uint8, 1 dimension


def _decompress(raw: bytes, path: object) -> bytes:
    """gunzip ``raw``, refusing garbage, truncation and more than MAX_IDX_BYTES of output."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as f:
            out = f.read(MAX_IDX_BYTES + 1)
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError; truncation is an EOFError
        raise ValueError(f"{path}: not a valid gzip file, truncated or corrupt ({e}); delete it so that it "
                         "is downloaded again") from None
    if len(out) > MAX_IDX_BYTES:
        raise ValueError(f"{path}: decompresses to more than {MAX_IDX_BYTES} bytes; not an IDX data set")
    return out


def read_idx(path: str | os.PathLike, *, magic: int | None = None) -> torch.Tensor:
    """Parse an IDX file (gzipped or plain) into a tensor of its stored shape and dtype.

    ``magic`` (e.g. ``IDX_IMAGES_MAGIC``) makes a file with another magic number raise ``ValueError``. A
    truncated or corrupt file (gzip or IDX) raises ``ValueError`` naming it.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or a path, got {type(path).__name__}")
    if magic is not None and (isinstance(magic, bool) or not isinstance(magic, int)):
        raise TypeError(f"magic must be an int or None, got {type(magic).__name__}")
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":  # gzip signature
        raw = _decompress(raw, path)
    if len(raw) < 4:
        raise ValueError(f"{path} is too short to be an IDX file ({len(raw)} bytes)")
    zero1, zero2, code, ndim = struct.unpack(">BBBB", raw[:4])
    file_magic = struct.unpack(">I", raw[:4])[0]
    if zero1 != 0 or zero2 != 0 or code not in _IDX_DTYPES or ndim == 0:
        raise ValueError(f"{path} is not an IDX file: bad magic number 0x{file_magic:08x}")
    if magic is not None and file_magic != magic:
        raise ValueError(f"{path}: magic number 0x{file_magic:08x}, expected 0x{magic:08x}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes, the {ndim} sizes need {header})")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _IDX_DTYPES[code]
    size = math.prod(shape) * dtype.itemsize  # exact Python ints: no overflow for absurd headers
    if len(raw) - header != size:
        raise ValueError(f"{path}: header says shape {shape} ({size} bytes of data), "
                         f"file holds {len(raw) - header}")
    data = np.frombuffer(raw, dtype=dtype, offset=header).astype(dtype.newbyteorder("="))
    return torch.from_numpy(data.reshape(shape))


def load_mnist(
    split: str = "train", *, fashion: bool = False, data_dir: str | os.PathLike | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST (or Fashion-MNIST with ``fashion=True``): images uint8 (N, 28, 28), labels int64 (N,).

    ``split`` is ``"train"`` (60,000) or ``"test"`` (10,000). Files are fetched once and hash-checked.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if not isinstance(fashion, bool):
        raise TypeError(f"fashion must be a bool, got {type(fashion).__name__}")
    prefix = "fashion-mnist" if fashion else "mnist"
    images = read_idx(fetch(f"{prefix}-{split}-images", data_dir=data_dir), magic=IDX_IMAGES_MAGIC)
    labels = read_idx(fetch(f"{prefix}-{split}-labels", data_dir=data_dir), magic=IDX_LABELS_MAGIC)
    if tuple(images.shape[1:]) != (28, 28):
        raise ValueError(f"{prefix} {split} images have shape {tuple(images.shape)}, expected (N, 28, 28)")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{prefix} {split}: {images.shape[0]} images but {labels.shape[0]} labels")
    return images, labels.to(torch.int64)
