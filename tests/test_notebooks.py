"""Static checks over the course notebooks (nbval executes them separately)."""

from __future__ import annotations

import ast
import contextlib
import importlib
import json
import math
import pkgutil
import random
import re
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch

import aigc_course
import aigc_course.checks
import aigc_course.finetune
import aigc_course.gan
import aigc_course.gpt
import aigc_course.lm
import aigc_course.ngram
import aigc_course.scaling
import aigc_course.vae

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*_solutions.ipynb"))
EXERCISES = sorted((ROOT / "exercises").glob("[0-9][0-9]_*_exercises.ipynb"))
ALL = LESSONS + SOLUTIONS + EXERCISES
HEADER_ROWS = ("Objectives", "Prerequisites", "Expected time", "GPU")


def _nb(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _ids(paths):
    return [str(p.relative_to(ROOT)) for p in paths]


def _source(cell: dict) -> str:
    src = cell["source"]
    return src if isinstance(src, str) else "".join(src)


def test_there_are_lessons_and_solutions():
    assert LESSONS, "no lessons in notebooks/"
    lesson_keys = {p.stem for p in LESSONS}
    solution_keys = {p.stem.removesuffix("_solutions") for p in SOLUTIONS}
    assert solution_keys <= lesson_keys, f"solutions without a lesson: {solution_keys - lesson_keys}"
    assert lesson_keys == solution_keys, f"lessons without solutions: {lesson_keys - solution_keys}"


@pytest.mark.parametrize("path", ALL, ids=_ids(ALL))
def test_outputs_are_stripped(path):
    nb = _nb(path)
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            assert not cell.get("outputs"), f"{path.name} cell {i} has stored outputs (run `make strip`)"
            assert cell.get("execution_count") is None, f"{path.name} cell {i} has an execution count"
        assert "execution" not in cell.get("metadata", {}), f"{path.name} cell {i} keeps execution metadata"
    assert "widgets" not in nb.get("metadata", {}), f"{path.name} keeps widget state"


@pytest.mark.parametrize("path", LESSONS + SOLUTIONS, ids=_ids(LESSONS + SOLUTIONS))
def test_header_and_setup_cell(path):
    cells = _nb(path)["cells"]
    head = _source(cells[0])
    assert cells[0]["cell_type"] == "markdown" and re.match(r"# Lesson \d\d — ", head), (
        f"{path.name}: first cell must start with '# Lesson NN — Title'")
    assert head.startswith(f"# Lesson {path.name[:2]} — "), f"{path.name}: lesson number in title differs"
    for row in HEADER_ROWS:
        assert f"**{row}**" in head, f"{path.name}: header table lacks the {row} row"
    assert re.search(r"fast[^|\n]*\d+\s*s", head) and re.search(r"full[^|\n]*\d+\s*(s|min)\b", head), (
        f"{path.name}: Expected time must give fast-mode and full-mode times")
    setup = _source(cells[1])
    assert cells[1]["cell_type"] == "code" and "setup_lesson(" in setup, (
        f"{path.name}: second cell must call aigc_course.notebook.setup_lesson")


@pytest.mark.parametrize("path", LESSONS + SOLUTIONS, ids=_ids(LESSONS + SOLUTIONS))
def test_no_environment_access_and_asserts_present(path):
    code = "\n".join(_source(c) for c in _nb(path)["cells"] if c["cell_type"] == "code")
    assert "os.environ" not in code and "getenv" not in code, (
        f"{path.name} reads the environment; use aigc_course.config (fast_mode, scale)")
    if path in LESSONS:
        assert len(re.findall(r"^\s*assert ", code, re.M)) >= 5, f"{path.name}: claims need assert checks"


def _package_public_names() -> set[str]:
    names: set[str] = set()
    for mod in pkgutil.walk_packages(aigc_course.__path__, "aigc_course."):
        if mod.name.endswith("__main__"):
            continue
        m = importlib.import_module(mod.name)
        names |= {n for n, v in vars(m).items() if not n.startswith("_") and getattr(v, "__module__", "")
                  .startswith("aigc_course") and callable(v)}
    return names


@pytest.mark.parametrize("path", LESSONS, ids=_ids(LESSONS))
def test_lessons_do_not_redefine_package_code(path):
    """Notebooks import models, losses and loops from aigc_course; they never define them again."""
    public = _package_public_names()
    code = "\n".join(_source(c) for c in _nb(path)["cells"] if c["cell_type"] == "code")
    defined = set(re.findall(r"^\s*(?:def|class)\s+([A-Za-z_]\w*)", code, re.M))
    assert not defined & public, f"{path.name} re-defines package code: {sorted(defined & public)}"
    assert not re.search(r"^\s*class\s+\w+\(\s*(nn\.)?Module\s*\)", code, re.M), (
        f"{path.name} defines an nn.Module; models belong in the package")


@pytest.mark.parametrize("path", SOLUTIONS, ids=_ids(SOLUTIONS))
def test_every_exercise_is_self_checked(path):
    cells = _nb(path)["cells"]
    regions = 0
    for i, cell in enumerate(cells):
        src = _source(cell)
        if cell["cell_type"] == "code" and "### BEGIN SOLUTION" in src:
            regions += 1
            after = src.split("### END SOLUTION")[-1] + (_source(cells[i + 1]) if i + 1 < len(cells) else "")
            assert re.search(r"\bcheck_\w+\(", after), (
                f"{path.name} cell {i}: an exercise must end with a self-check from aigc_course.checks")
    assert regions >= 3, f"{path.name}: needs at least 3 exercises, found {regions}"


def test_exercises_in_sync_with_solutions():
    from aigc_course.exercises import generate_exercises

    stale = generate_exercises(ROOT / "solutions", ROOT / "exercises", check=True)
    assert not stale, f"exercises/ is out of date for {stale}: run `make exercises`"


@pytest.mark.parametrize("path", EXERCISES, ids=_ids(EXERCISES))
def test_exercises_hide_the_solutions(path):
    text = path.read_text(encoding="utf-8")
    assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text
    assert "raise NotImplementedError" in text


@pytest.mark.parametrize("path", EXERCISES, ids=_ids(EXERCISES))
def test_a_fresh_exercise_notebook_fails_only_at_its_stubs(path, monkeypatch):
    """Run all on the notebook a student starts from: every stub's self-check says "not implemented yet",
    cells that use a stub fail only through it, and everything else runs."""
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("AIGC_FAST", "1")
    monkeypatch.setenv("AIGC_NUM_THREADS", "1")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=120, allow_errors=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    code = [(i, cell) for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    errors = {i: next((o for o in cell.outputs if o.output_type == "error"), None) for i, cell in code}
    for i, err in errors.items():
        assert err is None or err.ename in ("NotImplementedError", "CheckFailed"), (
            f"{path.name} cell {i} fails for a reason other than an unfinished exercise: {err.ename}: {err.evalue}")
    stubs = [k for k, (_, cell) in enumerate(code) if "raise NotImplementedError" in cell.source]
    for k in stubs:  # the self-check sits in the stub's cell or in the next code cell
        reports = [errors[i] for i, cell in code[k:k + 2] if re.search(r"\bcheck_\w+\(", cell.source)]
        assert reports and reports[0] is not None and reports[0].ename == "CheckFailed" \
            and "not implemented yet" in reports[0].evalue, (
                f"{path.name} cell {code[k][0]}: the stub's self-check must report 'not implemented yet'")
    assert len(stubs) >= 3


def test_readme_lists_every_lesson():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for p in LESSONS:
        assert p.name in readme, f"README's lesson table lacks {p.name}"


def _lesson_rows(markdown: str) -> dict[str, str]:
    """{"02": "GAN theory", ...}: the number and title columns of a markdown lesson table."""
    return {m[1]: m[2].strip() for m in re.finditer(r"^\| (\d\d) \| ([^|]+)\|", markdown, re.MULTILINE)}


def test_course_map_in_lesson_00_agrees_with_the_readme():
    readme = _lesson_rows((ROOT / "README.md").read_text(encoding="utf-8"))
    welcome = _nb(ROOT / "notebooks" / "00_welcome_aigc_pipeline.ipynb")
    course_map = _lesson_rows("\n".join(_source(c) for c in welcome["cells"] if c["cell_type"] == "markdown"))
    assert sorted(course_map) == sorted(readme), "lesson 00's course map and README's table list different lessons"
    for number, title in readme.items():
        if not title.startswith("["):  # a lesson still to come: README names it in plain words
            assert course_map[number].startswith(title), f"lesson {number}: {course_map[number]!r} vs README {title!r}"


SELF_CHECKS = [n for n in aigc_course.checks.__all__
               if n.startswith("check_") and n not in ("check_function", "check_value")]


def _not_implemented(*args, **kwargs):
    raise NotImplementedError("Exercise 9.9: replace this line with your code")


# Wrong answers every self-check must reject, whatever its exercise: they need no knowledge of the formula.
GENERIC_WRONG_ANSWERS = {
    "forgot to return": lambda *args: None,
    "returned its first argument unchanged": lambda *args: args[0],
    "returned a NaN scalar": lambda *args: torch.tensor(math.nan, dtype=torch.float64),
    "returned a Python list": lambda *args: [0.0, 1.0],
}


def test_there_are_self_checks():
    assert len(SELF_CHECKS) >= 9, SELF_CHECKS


@pytest.mark.parametrize("name", SELF_CHECKS)
def test_every_check_rejects_a_planted_wrong_answer(name):
    """Feed each self-check wrong answers and expect CheckFailed (an AssertionError, so nbval fails too)."""
    check = getattr(aigc_course.checks, name)
    with pytest.raises(aigc_course.checks.CheckFailed, match="not implemented yet"):
        check(_not_implemented)
    for label, wrong in GENERIC_WRONG_ANSWERS.items():
        with pytest.raises(aigc_course.checks.CheckFailed) as caught:
            check(wrong)
        assert isinstance(caught.value, AssertionError) and str(caught.value).strip(), label


def _is_raises_check_failed(expr: ast.expr) -> bool:
    """`pytest.raises(CheckFailed, ...)` (or `raises(checks.CheckFailed)`) as an AST node."""
    if not (isinstance(expr, ast.Call) and expr.args):
        return False
    func, exc = expr.func, expr.args[0]
    func_name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    exc_name = exc.attr if isinstance(exc, ast.Attribute) else getattr(exc, "id", None)
    return func_name == "raises" and exc_name == "CheckFailed"


def test_every_check_has_a_planted_mistake_test():
    """Each self-check's test file refers to it in code (not in a comment or a string) and has
    `with pytest.raises(CheckFailed)` blocks, at least one per check."""
    used: set[str] = set()
    raising_blocks = 0
    for path in sorted((ROOT / "tests").glob("test_checks*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        blocks = [node for node in ast.walk(tree) if isinstance(node, ast.With | ast.AsyncWith)
                  and any(_is_raises_check_failed(item.context_expr) for item in node.items)]
        raising_blocks += len(blocks)
        if blocks:
            used |= {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
            used |= {node.name for node in ast.walk(tree) if isinstance(node, ast.alias)}
    missing = [name for name in SELF_CHECKS if name not in used]
    assert not missing, f"no planted-mistake test refers to {missing}"
    assert raising_blocks >= len(SELF_CHECKS)


# ----------------------------------------------------------------------------------------------------
# Lesson asserts that can fail: plant a broken package function, run the lesson, see its own assert fail
# ----------------------------------------------------------------------------------------------------

LESSON_00 = ROOT / "notebooks" / "00_welcome_aigc_pipeline.ipynb"
LESSON_01 = ROOT / "notebooks" / "01_generative_modeling_basics.ipynb"
LESSON_02 = ROOT / "notebooks" / "02_gan_theory.ipynb"
LESSON_03 = ROOT / "notebooks" / "03_dcgan_images.ipynb"
LESSON_04 = ROOT / "notebooks" / "04_wasserstein_gan.ipynb"
LESSON_05 = ROOT / "notebooks" / "05_vae_theory.ipynb"
LESSON_06 = ROOT / "notebooks" / "06_vae_in_practice.ipynb"
LESSON_07 = ROOT / "notebooks" / "07_autoregressive_lm.ipynb"
LESSON_08 = ROOT / "notebooks" / "08_attention_gpt.ipynb"
LESSON_09 = ROOT / "notebooks" / "09_pretraining_finetuning_transfer.ipynb"
LESSON_10 = ROOT / "notebooks" / "10_scaling_up.ipynb"


_SOFTMAX_WITH_TEMPERATURE = aigc_course.ngram.softmax_with_temperature  # the real one, kept before planting
_GENERATOR_LOSS = aigc_course.gan.generator_loss
_INIT_DCGAN_WEIGHTS = aigc_course.gan.init_dcgan_weights
_GRADIENT_PENALTY = aigc_course.gan.gradient_penalty
_REPARAMETERIZE = aigc_course.vae.reparameterize
_IWAE = aigc_course.vae.importance_weighted_log_likelihood
_EVALUATE_LOSS = aigc_course.lm.evaluate_loss
_GPT_PARAMETER_COUNT = aigc_course.gpt.gpt_parameter_count


def _mle_not_normalised(counts):
    """Forgets to divide by N: larger than any distribution, so it "beats" every perturbation."""
    return counts.double()


def _temperature_multiplied(logits, temperature):
    """Multiplies by T instead of dividing (the limits T = 0 and T = ∞ stay right)."""
    if temperature == 0 or math.isinf(temperature):
        return _SOFTMAX_WITH_TEMPERATURE(logits, temperature)
    return torch.softmax(logits * temperature, dim=-1)


def _kl_wrong_sign_clamped(p, q):
    """Σ p log(q/p) ≤ 0, then the clamp at 0 of `kl_divergence`: all zeros, and `kl >= 0` still holds."""
    return (torch.xlogy(p, q) - torch.xlogy(p, p)).sum(-1).clamp_min(0.0)


def _js_mixture_not_halved_clamped(p, q):
    """m = p + q instead of (p + q)/2 gives JS - log 2 ≤ 0; the clamp at 0 turns it into zeros."""
    m = p + q
    terms = torch.xlogy(p, p) - torch.xlogy(p, m) + torch.xlogy(q, q) - torch.xlogy(q, m)
    return (0.5 * terms.sum(-1)).clamp_min(0.0)


def _non_saturating_article_sign(fake_logits, kind="non_saturating"):
    """The article's L_G = E_z[log D(G(z))] to be minimised: the non-saturating loss with the wrong sign."""
    if kind == "non_saturating":
        return -_GENERATOR_LOSS(fake_logits, kind="non_saturating")
    return _GENERATOR_LOSS(fake_logits, kind=kind)


def _init_std_read_as_variance(module, std=0.02):
    """Reads N(0, 0.02) as a variance: weights get std √0.02 ≈ 0.14 instead of 0.02."""
    return _INIT_DCGAN_WEIGHTS(module, std=std ** 0.5)


def _penalty_detached(critic, real, fake, generator=None):
    """The right value, detached from the critic's weights: the penalty is reported but constrains nothing."""
    return _GRADIENT_PENALTY(critic, real, fake, generator).detach()


def _reparameterize_variance_as_std(mu, logvar, *, rng=None):
    """Scales ε by the variance exp(logvar) instead of the standard deviation exp(logvar / 2)."""
    return _REPARAMETERIZE(mu, 2 * logvar, rng=rng)


def _iwae_without_log_k(model, x, k, **kwargs):
    """Forgets the 1/k inside the log: log Σ w_i instead of log (1/k) Σ w_i, too high by log k."""
    return _IWAE(model, x, k, **kwargs) + math.log(k)


def _evaluate_loss_divides_by_n(model, ids, block_size, **kwargs):
    """Divides the summed NLL by the number of tokens N instead of the N - 1 targets."""
    return _EVALUATE_LOSS(model, ids, block_size, **kwargs) * (ids.numel() - 1) / ids.numel()


def _count_without_final_layernorm(config, non_embedding=False):
    """Leaves out ln_f (2d parameters): the formula no longer matches the module."""
    d = config.n_embd
    return _GPT_PARAMETER_COUNT(config, non_embedding) - (2 * d if config.bias else d)


_APPLY_LORA = aigc_course.finetune.apply_lora
_FORWARD_FLOPS = aigc_course.scaling.forward_flops_per_token


def _freeze_without_effect(model, patterns=("*",)):
    """Returns the names it should freeze but leaves requires_grad on: the frozen layers keep training."""
    return [n for n, _ in model.named_parameters()]


def _lora_b_initialised_randomly(model, targets, r, alpha, dropout=0.0):
    """Initialises B like A (random) instead of zeros: the wrapped model no longer starts at the pre-trained one."""
    names = _APPLY_LORA(model, targets, r, alpha, dropout)
    with torch.no_grad():
        for layer in aigc_course.finetune.lora_layers(model).values():
            layer.lora_B.normal_(0.0, 0.02)
    return names


def _flops_without_attention(config, context=None):
    """Leaves out attention's 4·T·d per layer (the scores and the weighted values have no weights)."""
    T = config.block_size if context is None else context
    return _FORWARD_FLOPS(config, context) - 4 * config.n_layer * T * config.n_embd


# lesson, module, function, planted version, the assert (source text) that must catch it
PLANTED_HELPERS = [
    (LESSON_00, "aigc_course.ngram", "categorical_mle", _mle_not_normalised,
     "torch.allclose(p_hat, counts_th / counts_th.sum())"),
    (LESSON_00, "aigc_course.ngram", "softmax_with_temperature", _temperature_multiplied,
     "math.isclose(slope, formula"),
    (LESSON_01, "aigc_course.divergences", "kl_divergence", _kl_wrong_sign_clamped,
     "torch.allclose(kl_pq, raw_pq"),
    (LESSON_01, "aigc_course.divergences", "js_divergence", _js_mixture_not_halved_clamped,
     "torch.allclose(js_pq, js_sum"),
    (LESSON_02, "aigc_course.gan", "generator_loss", _non_saturating_article_sign,
     'generator_loss(fake_logits, kind="non_saturating"), -torch.log(D_fake)'),
    (LESSON_03, "aigc_course.gan", "init_dcgan_weights", _init_std_read_as_variance,
     "abs(conv_w.std() - 0.02) < 1e-3"),
    (LESSON_04, "aigc_course.gan", "gradient_penalty", _penalty_detached, "0.7 < gp_q10 and gp_q90 < 1.3"),
    (LESSON_05, "aigc_course.vae", "reparameterize", _reparameterize_variance_as_std, "abs(mc - cf) < 4 * mc_se"),
    (LESSON_06, "aigc_course.vae", "importance_weighted_log_likelihood", _iwae_without_log_k,
     "0 < -nll - elbo_mean < scale(full=1.0, fast=2.0)"),
    (LESSON_07, "aigc_course.lm", "evaluate_loss", _evaluate_loss_divides_by_n,
     "math.isclose(-val_log_probs.mean().item(), mlp_val, rel_tol=1e-5)"),
    (LESSON_08, "aigc_course.gpt", "gpt_parameter_count", _count_without_final_layernorm,
     "type(formula) is int and formula == module"),
    (LESSON_09, "aigc_course.finetune", "freeze", _freeze_without_effect,
     'count_parameters(probe)["trainable"] == 12 * C * C + 13 * C + 2 * C'),
    (LESSON_09, "aigc_course.finetune", "apply_lora", _lora_b_initialised_randomly, "torch.equal(logits, before)"),
    (LESSON_10, "aigc_course.scaling", "forward_flops_per_token", _flops_without_attention,
     "forward_counted == forward_flops_per_token(config)"),
]


@contextlib.contextmanager
def _lesson_state_restored():
    """Lessons seed the RNGs, set torch's default dtype and threads and matplotlib's rcParams: undo it all."""
    import matplotlib
    import matplotlib.pyplot as plt

    dtype, threads = torch.get_default_dtype(), torch.get_num_threads()
    np_state, py_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=[]), matplotlib.rc_context():
        try:
            yield
        finally:
            torch.set_default_dtype(dtype)
            torch.set_num_threads(threads)
            np.random.set_state(np_state)
            random.setstate(py_state)
            plt.close("all")


def _run_until_error(path: Path, stop_after: int) -> tuple[int, BaseException, str] | None:
    """Exec the lesson's code cells 0..stop_after in one namespace; on the first exception return
    (cell index, exception, the source line of that cell where it was raised)."""
    nb = _nb(path)
    namespace: dict = {"__name__": "__lesson__"}
    for i, cell in enumerate(nb["cells"][: stop_after + 1]):
        if cell["cell_type"] != "code":
            continue
        source = _source(cell)
        filename = f"<{path.name} cell {i}>"
        try:
            exec(compile(source, filename, "exec"), namespace)
        except Exception as e:  # any error is reported to the test, with where it happened
            frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == filename]
            line = source.splitlines()[frames[-1].lineno - 1] if frames else ""
            return i, e, line
    return None


@pytest.mark.slow
@pytest.mark.parametrize("path, module, name, planted, catching_assert", PLANTED_HELPERS,
                         ids=[f"{p.name[:2]}-{n}" for p, _, n, _, _ in PLANTED_HELPERS])
def test_lesson_asserts_catch_a_planted_broken_helper(path, module, name, planted, catching_assert, monkeypatch):
    """Replace one package function by a plausible wrong version and run the lesson (fast mode, in this
    process): it must stop with an AssertionError at the lesson's own assert for that claim. (nbval runs
    the unmodified lessons to the end, so these asserts pass when the helper is right.)"""
    import matplotlib.pyplot as plt

    cells = _nb(path)["cells"]
    target = next(i for i, c in enumerate(cells) if c["cell_type"] == "code" and catching_assert in _source(c))
    monkeypatch.setenv("AIGC_FAST", "1")
    monkeypatch.setenv("AIGC_NUM_THREADS", "1")
    monkeypatch.setattr(plt, "show", lambda *args, **kwargs: None)
    monkeypatch.setattr(importlib.import_module(module), name, planted)
    with _lesson_state_restored():
        failure = _run_until_error(path, stop_after=target)
    assert failure is not None, f"{path.name}: the planted {name} ({planted.__doc__.strip()}) went unnoticed"
    cell, error, line = failure
    assert isinstance(error, AssertionError) and cell == target and catching_assert in line, (
        f"{path.name}: expected the assert in cell {target} containing {catching_assert!r} to fail; "
        f"got {type(error).__name__}: {error} in cell {cell} at {line.strip()!r}")


def test_nbval_over_xdist_without_loadscope_is_refused() -> None:
    """Cells of one notebook share a kernel; spread over workers they fail with confusing NameErrors."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2", "--nbval-lax", "--co", "-q",
           "notebooks/00_welcome_aigc_pipeline.ipynb"]
    refused = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert refused.returncode == pytest.ExitCode.USAGE_ERROR, refused.stdout + refused.stderr
    assert "--dist loadscope" in refused.stderr
    allowed = subprocess.run([*cmd[:-1], "--dist", "loadscope", cmd[-1]], cwd=ROOT, capture_output=True,
                             text=True, timeout=120)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
