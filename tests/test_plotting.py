import matplotlib

matplotlib.use("Agg")

import math  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from aigc_course import plotting  # noqa: E402
from aigc_course.plotting import (  # noqa: E402
    LivePlot,
    ema,
    figure_grid,
    make_grid,
    plot_density_1d,
    plot_history,
    plot_latent_map,
    plot_samples_2d,
    show_images,
)


@pytest.fixture(autouse=True)
def _close_figures():
    plt.close("all")
    yield
    plt.close("all")


# ----------------------------------------------------------------------------- make_grid

def test_make_grid_gray_layout_and_padding_exact():
    imgs = np.arange(5 * 2 * 3, dtype=np.float32).reshape(5, 2, 3) + 1  # all > 0, pad is 0
    grid = make_grid(imgs, nrow=3, pad=1, pad_value=0.0)
    assert grid.shape == (2 * (2 + 1) + 1, 3 * (3 + 1) + 1)  # 2 rows, 3 columns
    for i in range(5):
        top, left = 1 + (i // 3) * 3, 1 + (i % 3) * 4
        np.testing.assert_array_equal(grid[top:top + 2, left:left + 3], imgs[i])
    # padding rows/columns and the empty sixth slot hold pad_value only
    assert (grid[0] == 0).all() and (grid[3] == 0).all() and (grid[:, 0] == 0).all() and (grid[:, 4] == 0).all()
    assert (grid[4:6, 9:12] == 0).all()
    assert (grid > 0).sum() == imgs.size


def test_make_grid_pad_value_zero_pad_and_single_row():
    imgs = np.zeros((2, 4, 4))
    grid = make_grid(imgs, nrow=8, pad=2, pad_value=7.0)
    assert grid.shape == (4 + 4, 2 * 6 + 2)  # cols = min(nrow, N) = 2
    assert (grid == 7.0).sum() == grid.size - 2 * 16
    assert make_grid(imgs, nrow=1, pad=0).shape == (8, 4)


@pytest.mark.parametrize("shape", [(4, 5, 6), (4, 1, 5, 6), (4, 3, 5, 6), (4, 5, 6, 3), (4, 5, 6, 1)])
def test_make_grid_accepts_layouts(shape):
    x = torch.rand(shape)
    grid = make_grid(x, nrow=2, pad=1)
    color = 3 in shape[1:2] or shape[-1] == 3
    assert grid.shape == ((2 * 6 + 1, 2 * 7 + 1, 3) if color else (13, 15))
    assert isinstance(grid, np.ndarray)


def test_make_grid_channels_first_values_land_in_the_right_place():
    x = torch.zeros(1, 3, 2, 2)
    x[0, 1, 0, 1] = 1.0  # green channel, row 0, col 1
    grid = make_grid(x, pad=1)
    assert grid[1, 2, 1] == 1.0 and grid.sum() == 1.0


@pytest.mark.parametrize("shape", [(5,), (2, 2, 3, 4, 5), (3, 2, 4, 5), (3, 4, 5, 2), (0, 4, 4)])
def test_make_grid_bad_shapes(shape):
    with pytest.raises(ValueError, match="images"):
        make_grid(np.zeros(shape))


def test_make_grid_bad_arguments():
    with pytest.raises(ValueError, match="nrow"):
        make_grid(np.zeros((2, 3, 3)), nrow=0)
    with pytest.raises(ValueError, match="pad"):
        make_grid(np.zeros((2, 3, 3)), pad=-1)
    with pytest.raises(TypeError, match="images"):
        make_grid("not images")


# ----------------------------------------------------------------------------- show_images

@pytest.mark.parametrize("shape", [(6, 7, 5), (6, 1, 7, 5), (6, 3, 7, 5), (6, 7, 5, 3)])
def test_show_images_layouts(shape):
    ax = show_images(torch.rand(shape) * 4 - 2, nrow=4, title="batch")
    assert ax.get_title() == "batch"
    shown = ax.get_images()[0].get_array()
    color = len(shape) == 4 and 3 in (shape[1], shape[3])
    assert shown.shape == ((2 * 8 + 1, 4 * 6 + 1, 3) if color else (17, 25))
    assert shown.min() == 0.0 and shown.max() == 1.0  # batch min..max mapped to 0..1
    assert (shown[0] == 1.0).all() and (shown[:, 0] == 1.0).all()  # 1px white padding


def test_show_images_value_range_maps_and_clips():
    x = np.array([[[-1.0, 0.0], [1.0, 3.0]]])
    ax = show_images(x, value_range=(-1, 1))
    np.testing.assert_allclose(ax.get_images()[0].get_array()[1:3, 1:3], [[0.0, 0.5], [1.0, 1.0]])
    ax = show_images(x)  # default: min..max of the batch
    np.testing.assert_allclose(ax.get_images()[0].get_array()[1:3, 1:3], [[0.0, 0.25], [0.5, 1.0]])
    ax = show_images(np.full((1, 2, 2), 51, dtype=np.uint8))  # uint8 defaults to 0..255
    np.testing.assert_allclose(ax.get_images()[0].get_array()[1:3, 1:3], 0.2, rtol=1e-6)


def test_show_images_draws_on_given_ax_and_labels_make_a_figure():
    _, ax = plt.subplots()
    assert show_images(torch.rand(3, 4, 4), ax=ax) is ax
    fig = show_images(torch.rand(5, 3, 4, 4), nrow=2, labels=[0, 1, 2, 3, 4], title="t")
    assert isinstance(fig, Figure) and len(fig.axes) == 5
    assert [a.get_title() for a in fig.axes] == ["0", "1", "2", "3", "4"]
    assert fig.axes[2].get_images()[0].get_array().shape == (4, 4, 3)


def test_show_images_bad_inputs():
    with pytest.raises(ValueError, match=r"\(N,H,W\)"):
        show_images(torch.rand(2, 2, 5, 5))
    with pytest.raises(ValueError, match="labels"):
        show_images(torch.rand(3, 4, 4), labels=["a", "b"])
    with pytest.raises(ValueError, match="ax"):
        show_images(torch.rand(2, 4, 4), labels=["a", "b"], ax=plt.subplots()[1])
    with pytest.raises(ValueError, match="value_range"):
        show_images(torch.rand(2, 4, 4), value_range=(1, 0))
    with pytest.raises(TypeError, match="ax"):
        show_images(torch.rand(2, 4, 4), ax="left")
    with pytest.raises(ValueError, match="finite"):
        show_images(torch.full((1, 2, 2), float("nan")))


# ----------------------------------------------------------------------------- plot_history and ema

def test_ema_matches_recurrence():
    y = np.array([4.0, 0.0, 2.0, 10.0])
    expected, acc = [], y[0]
    for v in y:
        acc = 0.75 * acc + 0.25 * v
        expected.append(acc)
    np.testing.assert_allclose(ema(y, 0.75), expected)
    np.testing.assert_allclose(ema(y, 0.0), y)
    assert ema(torch.ones(3), 0.9).tolist() == [1.0, 1.0, 1.0]
    for bad in (1.0, -0.1, True):
        with pytest.raises(ValueError, match="smooth"):
            ema(y, bad)
    with pytest.raises(ValueError, match=r"\(T,\)"):
        ema(np.zeros((2, 2)), 0.5)


def _lines(ax):
    return {line.get_label(): (line.get_xdata().tolist(), line.get_ydata().tolist()) for line in ax.get_lines()}


def test_plot_history_dict_of_lists_with_and_without_step():
    ax = plot_history({"loss": [3.0, 2.0, 1.0], "acc": torch.tensor([0.1, 0.5, 0.9])}, title="run")
    lines = _lines(ax)
    assert list(lines) == ["loss", "acc"]
    assert lines["loss"] == ([0, 1, 2], [3.0, 2.0, 1.0])
    np.testing.assert_allclose(lines["acc"][1], [0.1, 0.5, 0.9], rtol=1e-6)
    assert ax.get_title() == "run" and ax.get_legend() is not None
    ax = plot_history({"step": [0, 10, 20], "loss": [3.0, 2.0, 1.0]})
    assert _lines(ax) == {"loss": ([0, 10, 20], [3.0, 2.0, 1.0])}


def test_plot_history_list_of_records_and_records_attribute():
    records = [{"step": 0, "loss": 2.0}, {"step": 5, "loss": 1.5, "val": 1.9}, {"step": 10, "loss": 1.0}]
    expected = {"loss": ([0, 5, 10], [2.0, 1.5, 1.0]), "val": ([5], [1.9])}
    assert _lines(plot_history(records)) == expected

    class FakeHistory:  # like aigc_course.train.History: not a Mapping, but has .records
        def __init__(self, records):
            self.records = records

    assert _lines(plot_history(FakeHistory(records), keys="val")) == {"val": ([5], [1.9])}
    no_step = [{"loss": 2.0}, {"loss": 1.0}]
    assert _lines(plot_history(no_step)) == {"loss": ([0, 1], [2.0, 1.0])}


def test_plot_history_smoothing_and_logy():
    y = [5.0, 1.0, 3.0, 2.0, 8.0]
    ax = plot_history({"loss": y}, smooth=0.6, logy=True)
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"loss", "_loss (raw)"}
    assert lines["_loss (raw)"].get_ydata().tolist() == y
    assert lines["_loss (raw)"].get_alpha() < 1
    assert lines["loss"].get_color() == lines["_loss (raw)"].get_color()
    expected, acc = [], y[0]
    for v in y:
        acc = 0.6 * acc + 0.4 * v
        expected.append(acc)
    np.testing.assert_allclose(lines["loss"].get_ydata(), expected)
    assert ax.get_yscale() == "log"


def test_plot_history_skips_nonfinite_and_nonpositive_for_logy():
    ax = plot_history({"step": [0, 1, 2, 3], "kl": [1.0, float("nan"), 0.0, 2.0]}, logy=True)
    assert _lines(ax) == {"kl": ([0, 3], [1.0, 2.0])}


def test_plot_history_bad_inputs():
    with pytest.raises(ValueError, match="'nope'"):
        plot_history({"loss": [1.0]}, keys=["nope"])
    with pytest.raises(ValueError, match="step"):
        plot_history({"step": [0, 1], "loss": [1.0, 2.0, 3.0]})
    with pytest.raises(TypeError, match="history"):
        plot_history(42)
    with pytest.raises(TypeError, match="history"):
        plot_history([{"loss": 1.0}, 3.0])
    with pytest.raises(TypeError, match="loss"):
        plot_history({"loss": ["a", "b"]})
    with pytest.raises(TypeError, match="keys"):
        plot_history({"loss": [1.0]}, keys=[1])
    with pytest.raises(ValueError, match="smooth"):
        plot_history({"loss": [1.0]}, smooth=1.5)
    with pytest.raises(ValueError, match="no metrics"):
        plot_history([])


# ----------------------------------------------------------------------------- plot_samples_2d

def _scatter_offsets(ax):
    return [c.get_offsets() for c in ax.collections if isinstance(c, PathCollection)]


def test_plot_samples_2d_plain_and_auto_limits():
    pts = np.array([[0.0, 0.0], [10.0, 2.0], [5.0, -2.0]])
    ax = plot_samples_2d(torch.tensor(pts), label="model", title="samples")
    (offsets,) = _scatter_offsets(ax)
    np.testing.assert_allclose(offsets, pts)
    np.testing.assert_allclose(ax.get_xlim(), (-1.0, 11.0))
    np.testing.assert_allclose(ax.get_ylim(), (-2.4, 2.4))
    assert ax.get_legend() is not None and ax.get_title() == "samples"
    ax = plot_samples_2d(pts, lim=3)
    np.testing.assert_allclose(ax.get_xlim(), (-3, 3))
    np.testing.assert_allclose(plot_samples_2d(pts, lim=(0, 4)).get_ylim(), (0, 4))


def test_plot_samples_2d_reference_samples_target():
    ref = np.random.default_rng(0).normal(size=(50, 2)) * 5
    ax = plot_samples_2d(np.zeros((4, 2)), target=ref)
    ref_offsets, sample_offsets = _scatter_offsets(ax)
    np.testing.assert_allclose(ref_offsets, ref)
    assert sample_offsets.shape == (4, 2)
    assert ax.get_xlim()[0] < ref[:, 0].min() and ax.get_xlim()[1] > ref[:, 0].max()  # limits cover both


def test_plot_samples_2d_log_prob_target_callable_and_method():
    seen = []

    def log_prob(x):
        seen.append((x.shape, x.dtype))
        return -0.5 * ((x - torch.tensor([1.0, -1.0])) ** 2).sum(dim=1)

    ax = plot_samples_2d(torch.randn(20, 2), target=log_prob, lim=3, grid_size=31)
    assert seen == [(torch.Size([31 * 31, 2]), torch.float32)]
    contours = [c for c in ax.collections if not isinstance(c, PathCollection)]
    assert len(contours) == 1 and len(_scatter_offsets(ax)) == 1

    class Gaussian:
        def log_prob(self, x):
            return log_prob(x)

    ax = plot_samples_2d(torch.randn(20, 2), target=Gaussian(), lim=3, grid_size=11)
    assert seen[-1][0] == torch.Size([121, 2])
    assert len(ax.collections) == 2


def test_plot_samples_2d_bad_inputs():
    with pytest.raises(ValueError, match=r"samples must have shape \(N, 2\)"):
        plot_samples_2d(torch.randn(10, 3))
    with pytest.raises(ValueError, match="samples"):
        plot_samples_2d(torch.randn(0, 2))
    with pytest.raises(ValueError, match="target"):
        plot_samples_2d(torch.randn(10, 2), target=np.zeros((5, 3)))
    with pytest.raises(ValueError, match="log_prob"):
        plot_samples_2d(torch.randn(10, 2), target=lambda x: x, lim=2, grid_size=5)
    with pytest.raises(ValueError, match="lim"):
        plot_samples_2d(torch.randn(10, 2), lim=(2, 1))
    with pytest.raises(ValueError, match="grid_size"):
        plot_samples_2d(torch.randn(10, 2), target=lambda x: x[:, 0], grid_size=1)
    with pytest.raises(ValueError, match="finite"):
        plot_samples_2d(torch.full((3, 2), float("inf")))


# ----------------------------------------------------------------------------- plot_latent_map

def test_plot_latent_map_one_colour_and_legend_entry_per_class():
    coords = torch.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [6.0, 7.0], [8.0, 9.0]])
    labels = torch.tensor([7, 2, 7, 0, 2])
    ax = plot_latent_map(coords, labels, title="latent")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["0", "2", "7"]
    pts = [c.get_offsets().tolist() for c in ax.collections]
    assert pts == [[[6.0, 7.0]], [[2.0, 3.0], [8.0, 9.0]], [[0.0, 1.0], [4.0, 5.0]]]
    colours = [tuple(c.get_facecolor()[0][:3]) for c in ax.collections]
    assert len(set(colours)) == 3
    assert ax.get_title() == "latent" and ax.get_xlabel() == "$z_1$"
    many = plot_latent_map(np.random.default_rng(0).normal(size=(40, 2)), np.arange(40) % 15)
    assert len(many.collections) == 15


def test_plot_latent_map_bad_inputs():
    with pytest.raises(ValueError, match=r"^coords must have shape \(N, 2\) with N >= 1, got \(4, 3\)$"):
        plot_latent_map(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"^labels must have shape \(4,\) like coords, got \(3,\)$"):
        plot_latent_map(torch.zeros(4, 2), torch.zeros(3, dtype=torch.long))
    with pytest.raises(TypeError, match="^labels must be integer class labels, got dtype float32$"):
        plot_latent_map(torch.zeros(4, 2), torch.zeros(4))
    with pytest.raises(ValueError, match="^labels hold 21 classes; at most 20 can be told apart by colour$"):
        plot_latent_map(torch.zeros(21, 2), torch.arange(21))
    with pytest.raises(ValueError, match="alpha"):
        plot_latent_map(torch.zeros(2, 2), torch.arange(2), alpha=2)
    with pytest.raises(ValueError, match="marker area"):
        plot_latent_map(torch.zeros(2, 2), torch.arange(2), s=0)


# ----------------------------------------------------------------------------- plot_density_1d

def test_plot_density_1d_lines_and_fill():
    x = torch.linspace(-3, 3, 61)
    p = torch.exp(-0.5 * x**2) / math.sqrt(2 * math.pi)
    q = np.full(61, 1 / 6)
    ax = plot_density_1d(x, {"p(x)": p, "q(x)": q}, fill="p(x)", title="fit")
    lines = _lines(ax)
    assert list(lines) == ["p(x)", "q(x)"]
    np.testing.assert_allclose(lines["p(x)"][1], p.numpy(), rtol=1e-6)
    np.testing.assert_allclose(lines["q(x)"][0], x.numpy(), rtol=1e-6)
    assert len(ax.collections) == 1 and ax.get_title() == "fit"
    ax = plot_density_1d(x, {"p": p, "q": q}, fill=["p", "q"])
    assert len(ax.collections) == 2
    assert len(plot_density_1d(x, {"p": p}).collections) == 0


def test_plot_density_1d_bad_inputs():
    x = np.linspace(0, 1, 5)
    with pytest.raises(ValueError, match=r"densities\['p'\] must have shape"):
        plot_density_1d(x, {"p": np.zeros(4)})
    with pytest.raises(ValueError, match="x must have shape"):
        plot_density_1d(np.zeros((5, 2)), {"p": np.zeros(5)})
    with pytest.raises(TypeError, match="densities"):
        plot_density_1d(x, {})
    with pytest.raises(ValueError, match="fill"):
        plot_density_1d(x, {"p": np.zeros(5)}, fill="q")


# ----------------------------------------------------------------------------- figure_grid

def test_figure_grid_shapes():
    fig, axes = figure_grid(5, ncols=3, size=2.0)
    assert len(axes) == 5 and len(fig.axes) == 5
    np.testing.assert_allclose(fig.get_size_inches(), (6.0, 4.0))
    fig, axes = figure_grid(2, ncols=3)
    np.testing.assert_allclose(fig.get_size_inches(), (6.0, 3.0))
    with pytest.raises(ValueError, match="n must"):
        figure_grid(0)
    with pytest.raises(ValueError, match="size"):
        figure_grid(2, size=-1)


# ----------------------------------------------------------------------------- LivePlot

class FakeHandle:
    def __init__(self, log):
        self.log = log

    def update(self, obj):
        self.log.append(("update", obj))


@pytest.fixture
def fake_notebook(monkeypatch):
    """Pretend to run in a notebook kernel: record what LivePlot displays."""
    log = []

    def display(obj, display_id=False):
        assert display_id is True
        log.append(("display", obj))
        return FakeHandle(log)

    monkeypatch.setattr(plotting, "_frontend_display", lambda: display)
    return log


def test_liveplot_records_history_and_callback_form():
    live = LivePlot(every=2)
    live.update(0, loss=torch.tensor(2.0))
    live(1, {"loss": 1.5, "val": np.float32(1.25)})
    live.update(2, loss=1.0)
    history = live.history
    assert list(history) == ["step", "loss", "val"]
    assert history["step"] == [0.0, 1.0, 2.0] and history["loss"] == [2.0, 1.5, 1.0]
    assert math.isnan(history["val"][0]) and history["val"][1] == 1.25 and math.isnan(history["val"][2])
    ax = live.plot()
    assert _lines(ax)["val"] == ([1.0], [1.25])


def test_liveplot_without_frontend_only_records(monkeypatch):
    assert plotting._frontend_display() is None  # plain pytest process: no kernel
    before = plt.get_fignums()
    live = LivePlot(every=1)
    for step in range(5):
        live.update(step, loss=1.0 / (step + 1))
    live.close()
    assert plt.get_fignums() == before and len(live.history["loss"]) == 5


def test_liveplot_redraws_every_n_calls_in_place_without_leaking(fake_notebook):
    before = plt.get_fignums()
    live = LivePlot(keys=("loss",), every=3, logy=True, smooth=0.5)
    for step in range(7):
        live(step, {"loss": 2.0 ** -step, "acc": 0.1 * step})
    assert [kind for kind, _ in fake_notebook] == ["display", "update"]  # after calls 3 and 6
    image = fake_notebook[0][1]
    assert image.data[:8] == b"\x89PNG\r\n\x1a\n"
    live.close()
    assert [kind for kind, _ in fake_notebook] == ["display", "update", "update"]  # final picture
    live.close()
    live.update(7, loss=0.001)
    assert len(fake_notebook) == 3  # closed: no more pictures, values still recorded
    assert len(live.history["loss"]) == 8
    assert plt.get_fignums() == before


def test_liveplot_close_skips_redraw_when_nothing_new(fake_notebook):
    live = LivePlot(every=2)
    live.update(0, loss=1.0)
    live.update(1, loss=0.5)
    live.close()
    assert len(fake_notebook) == 1


def test_liveplot_disabled_only_records(fake_notebook):
    live = LivePlot(every=1, enabled=False)
    for step in range(4):
        live.update(step, loss=1.0)
    live.close()
    assert fake_notebook == [] and live.history["step"] == [0.0, 1.0, 2.0, 3.0]


def test_liveplot_waits_for_its_keys(fake_notebook):
    live = LivePlot(keys=("val",), every=1)
    live.update(0, loss=1.0)
    assert fake_notebook == []
    with pytest.raises(ValueError, match="nothing to plot"):
        live.plot()
    live.update(1, loss=0.9, val=1.2)
    assert len(fake_notebook) == 1


def test_liveplot_bad_inputs():
    with pytest.raises(ValueError, match="every"):
        LivePlot(every=0)
    with pytest.raises(TypeError, match="keys"):
        LivePlot(keys=[1, 2])
    with pytest.raises(ValueError, match="smooth"):
        LivePlot(smooth=1.0)
    live = LivePlot()
    with pytest.raises(TypeError, match="step"):
        live.update(1.5, loss=1.0)
    with pytest.raises(TypeError, match="'loss'"):
        live.update(0, loss="low")
    with pytest.raises(TypeError, match="'loss'"):
        live.update(0, loss=torch.ones(3))
    with pytest.raises(TypeError, match="metrics"):
        live(0, [1.0])
    with pytest.raises(ValueError, match="step"):
        live(0, {"step": 0, "loss": 1.0})
    assert live.records == []


def test_plot_history_accepts_train_history_and_liveplot():
    train = pytest.importorskip("aigc_course.train")
    history = train.History([{"step": 0.0, "loss": 1.0}, {"step": 1.0, "loss": 0.5, "val": 0.7}])
    assert _lines(plot_history(history)) == {"loss": ([0, 1], [1.0, 0.5]), "val": ([1], [0.7])}
    live = LivePlot()
    live(3, {"loss": 0.25})
    assert _lines(plot_history(live)) == {"loss": ([3], [0.25])}


# ----------------------------------------------------------------------------- sizes, finiteness, flags

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.differing_executors])


class TestSizeBounds:
    """Sizes that would exhaust memory are refused up front, naming the argument; the bounds are exact."""

    @FAST
    @given(pad=st.integers(0, 10**7), n=st.integers(1, 64), side=st.integers(1, 64), nrow=st.integers(1, 10**6))
    def test_make_grid_refuses_exactly_the_grids_over_the_pixel_bound(self, pad, n, side, nrow):
        images = np.zeros((n, side, side), dtype=np.float32)
        cols = min(nrow, n)
        rows = math.ceil(n / cols)
        pixels = (rows * (side + pad) + pad) * (cols * (side + pad) + pad)
        if pixels > plotting.MAX_GRID_PIXELS:
            with pytest.raises(ValueError, match=f"would have {pixels:,} pixels, more than MAX_GRID_PIXELS"):
                make_grid(images, nrow=nrow, pad=pad)
        else:
            assert make_grid(images, nrow=nrow, pad=pad).shape == (rows * (side + pad) + pad,
                                                                  cols * (side + pad) + pad)

    def test_the_probed_75_gib_grid_is_refused_fast(self):
        with pytest.raises(ValueError, match="pad"):
            make_grid(torch.rand(64, 1, 28, 28), nrow=8, pad=100_000)

    def test_density_grid_size_bound(self):
        pts = torch.randn(5, 2)
        with pytest.raises(ValueError, match=r"^grid_size must be an int <= 1000 \(a bound"):
            plot_samples_2d(pts, target=lambda x: -x.square().sum(1), grid_size=plotting.MAX_DENSITY_GRID + 1)
        calls = []

        def log_prob(x):
            calls.append(len(x))
            return -x.square().sum(1)

        plot_samples_2d(pts, target=log_prob, grid_size=3)
        assert calls == [9]

    def test_scatter_points_bound(self, monkeypatch):
        monkeypatch.setattr(plotting, "MAX_SCATTER_POINTS", 10)
        plot_samples_2d(torch.randn(10, 2))
        with pytest.raises(ValueError, match=r"^samples has 11 points, more than MAX_SCATTER_POINTS = 10"):
            plot_samples_2d(torch.randn(11, 2))
        with pytest.raises(ValueError, match=r"^target has 11 points"):
            plot_samples_2d(torch.randn(3, 2), target=torch.randn(11, 2))

    @FAST
    @given(n=st.integers(1, 2000), ncols=st.integers(1, 50), size=st.floats(0.1, 20))
    def test_figure_grid_bounds(self, n, ncols, size):
        cols = min(ncols, n)
        rows = math.ceil(n / cols)
        too_big = n > plotting.MAX_PANELS or max(size * cols, size * rows) > plotting.MAX_FIGURE_INCHES
        if too_big:
            with pytest.raises(ValueError, match=r"^(n must be an int <= 400|size=)"):
                figure_grid(n, ncols=ncols, size=size)
        else:
            fig, axes = figure_grid(n, ncols=ncols, size=size)
            assert len(axes) == n
            np.testing.assert_allclose(fig.get_size_inches(), (size * cols, size * rows))
            plt.close(fig)

    def test_labelled_images_bounds_name_the_argument(self):
        imgs = torch.rand(401, 4, 4)
        with pytest.raises(ValueError, match=r"^labels: at most MAX_PANELS = 400 labelled images"):
            show_images(imgs, labels=list(range(401)))
        with pytest.raises(ValueError, match=r"^nrow=50 labelled images per row .* use nrow <= 46"):
            show_images(imgs[:60], nrow=50, labels=list(range(60)))

    def test_a_tall_grid_gets_a_bounded_figure(self):
        ax = show_images(torch.rand(500, 8, 8), nrow=1)
        width, height = ax.figure.get_size_inches()
        assert height == pytest.approx(plotting.MAX_FIGURE_INCHES) and 0 < width < 1.2


class TestFiniteShapesAndFlags:
    @FAST
    @given(bad=st.sampled_from([math.nan, math.inf, -math.inf]), where=st.integers(0, 15))
    def test_non_finite_inputs_are_refused(self, bad, where):
        img = torch.rand(1, 4, 4)
        img.view(-1)[where] = bad
        with pytest.raises(ValueError, match=r"^images must hold finite numbers, got 1 NaN or infinite value"):
            show_images(img, value_range=(0, 1))
        pts = torch.zeros(8, 2)
        pts.view(-1)[where] = bad
        with pytest.raises(ValueError, match=r"^samples must hold finite points, got 1 of 8 with NaN or inf"):
            plot_samples_2d(pts, lim=1)
        x = torch.linspace(0, 1, 16)
        with pytest.raises(ValueError, match=r"^densities\['p'\] must hold finite numbers"):
            plot_density_1d(x, {"q": x, "p": torch.where(torch.arange(16) == where, bad, x)})
        with pytest.raises(ValueError, match=r"^x must hold finite numbers"):
            plot_density_1d(torch.where(torch.arange(16) == where, bad, x), {"p": x})

    def test_wrong_shapes_and_odd_numbers_are_refused(self):
        with pytest.raises(ValueError, match=r"samples must have shape \(N, 2\) with N >= 1, got \(4, 3\)"):
            plot_samples_2d(torch.zeros(4, 3))
        with pytest.raises(ValueError, match=r"^s \(marker area\) must be a positive finite number"):
            plot_samples_2d(torch.zeros(4, 2), s=-1)
        with pytest.raises(ValueError, match=r"^alpha must be a number in \[0, 1\], got 2"):
            plot_samples_2d(torch.zeros(4, 2), alpha=2)
        with pytest.raises(ValueError, match=r"^pad_value must be a finite number, got nan"):
            make_grid(torch.zeros(2, 3, 3), pad_value=math.nan)

    @pytest.mark.parametrize("value", ["no", "False", 0, 1, None])
    def test_bool_flags_refuse_truthy_stand_ins(self, value):
        with pytest.raises(TypeError, match=r"^logy must be a bool \(True or False\)"):
            plot_history({"loss": [1.0, 2.0]}, logy=value)
        with pytest.raises(TypeError, match=r"^logy must be a bool"):
            LivePlot(logy=value)
        with pytest.raises(TypeError, match=r"^enabled must be a bool"):
            LivePlot(enabled=value)
