"""Self-checks that exercises call at the end (``check_*``); each gives a targeted hint when wrong.

The framework lives in :mod:`aigc_course.checks._core`; each lesson family adds its checks in its own
module here and re-exports them below.
"""

from ._core import (
    Case,
    Check,
    CheckFailed,
    Mistake,
    TensorResult,
    TupleResult,
    check_function,
    check_value,
    max_abs_diff,
    values_close,
)
from .attention import *  # noqa: F403
from .attention import __all__ as _attention_all
from .dcgan import *  # noqa: F403
from .dcgan import __all__ as _dcgan_all
from .divergences import *  # noqa: F403
from .divergences import __all__ as _div_all
from .gan_theory import *  # noqa: F403
from .gan_theory import __all__ as _gan_theory_all
from .lm_basics import *  # noqa: F403
from .lm_basics import __all__ as _lm_basics_all
from .pipeline import *  # noqa: F403
from .pipeline import __all__ as _pipe_all
from .scaling import *  # noqa: F403
from .scaling import __all__ as _scaling_all
from .transfer import *  # noqa: F403
from .transfer import __all__ as _transfer_all
from .vae_practice import *  # noqa: F403
from .vae_practice import __all__ as _vae_practice_all
from .vae_theory import *  # noqa: F403
from .vae_theory import __all__ as _vae_theory_all
from .wasserstein import *  # noqa: F403
from .wasserstein import __all__ as _wasserstein_all

__all__ = [
    "Case", "Check", "CheckFailed", "Mistake", "TensorResult", "TupleResult", "check_function", "check_value",
    "max_abs_diff", "values_close", *_pipe_all, *_div_all, *_gan_theory_all, *_dcgan_all,
    *_wasserstein_all, *_vae_theory_all, *_vae_practice_all, *_lm_basics_all, *_attention_all,
    *_transfer_all, *_scaling_all,
]
