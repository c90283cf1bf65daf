"""What every self-check's test shares: the planted-mistake catalogue rules and the case snapshot.

A test file for a family of checks defines, per exercise, ``WRONG`` rows ``(fn, hint_regex, kind)`` and
``RIGHT`` answers, collects them in ``CATALOGUES = {"1.1": (check_fn, CHECK, WRONG, RIGHT), ...}`` and calls
:func:`catalogue_tests` to get the tests every catalogue must pass.
"""

from __future__ import annotations

import math
import re

import pytest
import torch

from aigc_course.checks import CheckFailed

# The classes every catalogue must cover (besides plain wrong formulas).
REQUIRED = {"in-place", "type", "unstable", "edge"}


def not_implemented(*args, **kwargs):
    raise NotImplementedError("Exercise N.x: replace this line with your code")


def assert_rejected(check, fn, hint):
    """``fn`` fails ``check`` with a message that starts with "✗ <name>: " and then, when ``hint`` names one of
    the check's mistakes, with that mistake's whole hint (else with text that contains ``hint``)."""
    with pytest.raises(CheckFailed) as exc:
        check.run(fn)
    message = str(exc.value)
    prefix = f"✗ {check.name}: "
    assert message.startswith(prefix), message
    body = message[len(prefix):]
    hints = [m.hint for m in check.mistakes if re.search(hint, m.hint)]
    if hints:
        assert any(body == h or body.startswith(h + "\n") for h in hints), (hint, body)
    else:
        assert re.search(hint, body), (hint, body)  # a type or in-place hint, or the case's note


def _off(x):
    """A generic wrong version of a correct result (no listed mistake produces it)."""
    if isinstance(x, tuple):
        return tuple(_off(v) for v in x)
    return x + 1 if not x.is_floating_point() else x * 1.5 + 0.25


def _nan(x):
    return tuple(_nan(v) for v in x) if isinstance(x, tuple) else x.double() * math.nan


def _reshaped(x):
    return tuple(v[..., None] for v in x) if isinstance(x, tuple) else _off(x)[..., None]


def generic_messages(check):
    """The messages a check gives for wrong answers that match no listed mistake."""
    out = []
    for change in (_off, _nan, _reshaped):
        with pytest.raises(CheckFailed) as exc:
            check.run(lambda *a, change=change: change(check.reference(*a)))
        out.append(str(exc.value))
    return out


def catalogue_tests(catalogues, symptom_students):
    """The tests every catalogue must pass, parametrized over ``catalogues``; ``symptom_students`` maps a
    piece of a symptom-only mistake's hint to a planted answer that shows the symptom."""
    exercises = pytest.mark.parametrize("exercise", list(catalogues))

    @exercises
    def test_catalogue_is_complete(exercise):
        _, _, wrong, right = catalogues[exercise]
        kinds = {p.values[2] for p in wrong}
        assert REQUIRED <= kinds, f"missing classes {REQUIRED - kinds}"
        assert len(wrong) >= 5
        styles = {p.id for p in right} - {"reference"}
        assert len(styles) >= 2, "need two correct answers besides the reference"

    @exercises
    def test_hint_words_are_not_in_labels_or_generic_messages(exercise):
        _, check, wrong, _ = catalogues[exercise]
        generic = generic_messages(check)
        assert any("max |yours - reference|" in g for g in generic)
        texts = generic + [c.label for c in check.case_list()]
        for p in wrong:
            for text in texts:
                assert not re.search(p.values[1], text), (p.values[1], text)

    @exercises
    def test_every_mistake_hint_is_reachable(exercise):
        checker, check, _, _ = catalogues[exercise]
        for m in check.mistakes:
            student = m.wrong or next(s for k, s in symptom_students.items() if k in m.hint)
            with pytest.raises(CheckFailed) as exc:
                checker(student)
            assert m.hint in str(exc.value)

    @exercises
    def test_not_implemented_gives_the_not_implemented_message(exercise):
        with pytest.raises(CheckFailed, match="not implemented yet"):
            catalogues[exercise][0](not_implemented)

    return (test_catalogue_is_complete, test_hint_words_are_not_in_labels_or_generic_messages,
            test_every_mistake_hint_is_reachable, test_not_implemented_gives_the_not_implemented_message)


# ----------------------------------------------------------------------------- the cases a student sees

def fingerprint(case):
    """What pins a case: its label, note and keyword names, and per argument the number itself or, for a
    tensor, its shape, dtype, counts of +inf, -inf, NaN and 0, and four sums of the finite entries
    (plain, position-weighted, squared, squared about their mean)."""
    out = []
    for a in case.args:
        if isinstance(a, torch.Tensor):
            x = a.detach().double().flatten()
            finite = torch.where(torch.isfinite(x), x, torch.zeros_like(x))
            pos = torch.arange(1, x.numel() + 1, dtype=torch.float64)
            out.append((tuple(a.shape), str(a.dtype), int((x == math.inf).sum()), int((x == -math.inf).sum()),
                        int(x.isnan().sum()), int((x == 0).sum()), float(finite.sum()), float((finite * pos).sum()),
                        float((finite * finite).sum()), float(((finite - finite.mean()) ** 2).sum())))
        else:
            out.append(a)
    return (case.label, case.note, tuple(sorted(case.kwargs)), tuple(out))


def assert_same_cases(check, snapshot):
    """The check's cases equal the snapshot: texts, shapes, dtypes and counts exactly, sums to 1e-9 (relative),
    so a new random-number implementation in torch does not fail this test for last-bit differences."""
    got = [fingerprint(c) for c in check.case_list()]
    assert [g[:3] for g in got] == [w[:3] for w in snapshot]
    for g, w in zip(got, snapshot, strict=True):
        assert len(g[3]) == len(w[3]), g[0]
        for a, b in zip(g[3], w[3], strict=True):
            if isinstance(b, tuple):
                assert a[:6] == b[:6], (g[0], a, b)
                assert a[6:] == pytest.approx(b[6:], rel=1e-9, abs=1e-12), (g[0], a, b)
            else:
                assert type(a) is type(b) and a == b, (g[0], a, b)


def case_snapshot_test(checks_module, snapshot):
    """The snapshot test for a family of checks: ``snapshot`` maps each check's name in ``checks_module`` to
    its fingerprints. A changed value, seed, shape, label or note shows here; when a change is intended,
    print ``[fingerprint(c) for c in CHECK.case_list()]`` and update the table."""

    @pytest.mark.parametrize("name", sorted(snapshot))
    def test_the_cases_are_the_ones_students_see(name):
        assert_same_cases(getattr(checks_module, name), snapshot[name])

    return test_the_cases_are_the_ones_students_see
