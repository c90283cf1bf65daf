"""Data for the course: offline sets that ship with the packages, 2D toys, text, and hash-checked downloads.

- ``load_digits_split``: scikit-learn's 8x8 digits, fixed stratified split, images in [0, 1].
- ``sample_2d`` / ``gaussian_mixture_2d``: ring8, grid25, swiss_roll, two_moons; mode-coverage metrics.
- ``docs_corpus`` / ``CharVocab``: English text from Python's own documentation, char-level vocabulary.
- ``fetch`` / ``load_mnist`` / ``load_tiny_shakespeare``: downloads through pooch, cached under
  ``aigc_course.config.cache_dir()``; offline they raise ``DatasetUnavailableError`` with instructions.
"""

from .digits import DigitsSplit, from_symmetric, load_digits_split, to_symmetric, to_unit
from .downloads import (
    DATA_URL_ENV,
    DATASETS,
    IDX_IMAGES_MAGIC,
    IDX_LABELS_MAGIC,
    DatasetEntry,
    DatasetUnavailableError,
    cached_datasets,
    fetch,
    load_mnist,
    load_tiny_shakespeare,
    read_idx,
    sha256_file,
)
from .text import CharVocab, docs_corpus, train_val_split_text
from .toy2d import (
    TOY_2D_NAMES,
    GaussianMixture2D,
    gaussian_mixture_2d,
    high_quality_fraction,
    modes_covered,
    sample_2d,
)

__all__ = [
    "DATASETS", "DATA_URL_ENV", "IDX_IMAGES_MAGIC", "IDX_LABELS_MAGIC", "TOY_2D_NAMES",
    "CharVocab", "DatasetEntry", "DatasetUnavailableError", "DigitsSplit", "GaussianMixture2D",
    "cached_datasets", "docs_corpus", "fetch", "from_symmetric", "gaussian_mixture_2d",
    "high_quality_fraction",
    "load_digits_split", "load_mnist", "load_tiny_shakespeare", "modes_covered", "read_idx", "sample_2d",
    "sha256_file", "to_symmetric", "to_unit", "train_val_split_text",
]
