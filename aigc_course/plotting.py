"""Plotting helpers for the lessons: image grids, loss curves, 2D samples, 1D densities, live plots.

Every helper takes an optional ``ax`` (a new figure is made when it is None), returns what it drew on,
never calls ``plt.show()`` and never touches the global ``rcParams``. Tensors and arrays are both accepted;
tensors are detached and moved to the CPU first.

Sizes are bounded so that a typo cannot exhaust memory (ValueError naming the argument): an image grid holds
at most ``MAX_GRID_PIXELS`` pixels, a figure is at most ``MAX_FIGURE_INCHES`` on a side with at most
``MAX_PANELS`` panels, a density grid is at most ``MAX_DENSITY_GRID`` points on a side and a scatter plot
holds at most ``MAX_SCATTER_POINTS`` points. Non-finite images, points and densities are refused.
"""

from __future__ import annotations

import io
import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = ["LivePlot", "ema", "figure_grid", "make_grid", "plot_density_1d", "plot_history",
           "plot_latent_map", "plot_samples_2d", "show_images"]

ArrayLike = torch.Tensor | np.ndarray | Sequence[float]

MAX_GRID_PIXELS = 50_000_000  # make_grid output (rows x cols of the tiled picture): 200 MB as float32
MAX_FIGURE_INCHES = 60.0  # per side: 6000 px at 100 dpi
MAX_PANELS = 400  # subplots in one figure (figure_grid, labelled show_images)
MAX_DENSITY_GRID = 1000  # plot_samples_2d grid_size: grid_size**2 log_prob evaluations
MAX_SCATTER_POINTS = 2_000_000  # per scatter call: more is slow and unreadable; subsample first
_LABELLED_PANEL_INCHES = 1.3


# ----------------------------------------------------------------------------- input helpers

def _as_array(x: Any, name: str) -> np.ndarray:
    """A tensor, array or nested list of numbers as a real-valued numpy array."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = x.float() if x.dtype == torch.bfloat16 else x
        arr = x.numpy()
    elif isinstance(x, np.ndarray | list | tuple):
        try:
            arr = np.asarray(x)
        except ValueError as e:  # ragged nested lists
            raise ValueError(f"{name} must be a rectangular array of numbers: {e}") from None
    else:
        raise TypeError(f"{name} must be a torch.Tensor, numpy array or list of numbers, "
                        f"got {type(x).__name__}")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool) or np.iscomplexobj(arr):
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    return arr


def _get_ax(ax: Axes | None) -> Axes:
    if ax is None:
        return plt.subplots()[1]
    if not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}")
    return ax


def _check_int(value: Any, name: str, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be an int <= {maximum} (a bound that keeps the plot in memory), "
                         f"got {value!r}")
    return int(value)


def _check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool (True or False), got {type(value).__name__} {value!r:.40}")
    return value


def _require_finite(arr: np.ndarray, name: str) -> np.ndarray:
    bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise ValueError(f"{name} must hold finite numbers, got {bad} NaN or infinite value(s) of {arr.size}")
    return arr


def _check_smooth(smooth: Any) -> float:
    if isinstance(smooth, bool) or not isinstance(smooth, numbers.Real) or not 0 <= smooth < 1:
        raise ValueError(f"smooth must be a float in [0, 1), got {smooth!r}")
    return float(smooth)


# ----------------------------------------------------------------------------- images

def _to_nhwc(images: Any, name: str = "images") -> np.ndarray:
    """(N,H,W), (N,1,H,W), (N,3,H,W), (N,H,W,1), (N,H,W,3) or one (H,W) image -> (N,H,W,C), C in {1,3}."""
    x = _as_array(images, name)
    if x.ndim == 2:
        x = x[None]
    if x.ndim == 3:
        x = x[..., None]
    elif x.ndim == 4 and x.shape[1] in (1, 3):
        x = x.transpose(0, 2, 3, 1)
    elif not (x.ndim == 4 and x.shape[3] in (1, 3)):
        raise ValueError(f"{name} must have shape (N,H,W), (N,1,H,W), (N,3,H,W) or (N,H,W,3), "
                         f"got {tuple(x.shape)}")
    if 0 in x.shape:
        raise ValueError(f"{name} must hold at least one non-empty image, got shape {tuple(x.shape)}")
    return x


def make_grid(images: Any, nrow: int = 8, pad: int = 1, pad_value: float = 0.0) -> np.ndarray:
    """Tile images into one array, ``nrow`` images per row, with ``pad`` pixels around every tile.

    images: any layout :func:`show_images` accepts. Returns (GH, GW) for one channel, (GH, GW, 3) for
    colour, with GH = rows*(H+pad)+pad and GW = cols*(W+pad)+pad, cols = min(nrow, N).
    """
    x = _to_nhwc(images)
    nrow = _check_int(nrow, "nrow", 1)
    pad = _check_int(pad, "pad", 0)
    n, h, w, c = x.shape
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    pixels = (rows * (h + pad) + pad) * (cols * (w + pad) + pad)
    if pixels > MAX_GRID_PIXELS:
        raise ValueError(f"the grid of {n} images of {h}x{w} with pad={pad} would have {pixels:,} pixels, more "
                         f"than MAX_GRID_PIXELS = {MAX_GRID_PIXELS:,}; show fewer or smaller images, or a "
                         "smaller pad")
    if not (isinstance(pad_value, numbers.Real) and not isinstance(pad_value, bool) and math.isfinite(pad_value)):
        raise ValueError(f"pad_value must be a finite number, got {pad_value!r}")
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), pad_value, dtype=x.dtype)
    for i in range(n):
        top = pad + (i // cols) * (h + pad)
        left = pad + (i % cols) * (w + pad)
        grid[top:top + h, left:left + w] = x[i]
    return grid[..., 0] if c == 1 else grid


def _value_range(x: np.ndarray, value_range: Any) -> tuple[float, float]:
    if value_range is None:
        finite = x[np.isfinite(x)]
        if finite.size == 0:
            raise ValueError("images contain no finite values")
        return float(finite.min()), float(finite.max())
    if (not isinstance(value_range, Sequence) or len(value_range) != 2
            or not all(isinstance(v, numbers.Real) and math.isfinite(v) for v in value_range)
            or not value_range[0] < value_range[1]):
        raise ValueError(f"value_range must be a pair (lo, hi) of finite numbers with lo < hi, "
                         f"got {value_range!r}")
    return float(value_range[0]), float(value_range[1])


def show_images(images: Any, nrow: int = 8, *, title: str | None = None, cmap: str = "gray",
                value_range: tuple[float, float] | None = None, labels: Sequence[Any] | None = None,
                ax: Axes | None = None) -> Axes | Figure:
    """Show a batch of images as a grid.

    images: (N,H,W), (N,1,H,W), (N,3,H,W) or (N,H,W,3), tensor or array. Values are mapped from
    ``value_range`` (default: the batch's min and max; (0, 255) for uint8) to black..white.
    Without ``labels`` the images are tiled into one picture on ``ax`` and the Axes is returned; with
    ``labels`` (one per image) each image gets its own small subplot and the new Figure is returned.
    """
    x = _to_nhwc(images)
    nrow = _check_int(nrow, "nrow", 1)
    if x.dtype != bool:
        _require_finite(x, "images")
    if value_range is None and x.dtype == np.uint8:
        value_range = (0, 255)
    lo, hi = _value_range(x, value_range)
    x = np.clip((x.astype(np.float32) - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    gray = x.shape[3] == 1
    shown = {"cmap": cmap, "vmin": 0.0, "vmax": 1.0} if gray else {}

    if labels is None:
        grid = make_grid(x, nrow=nrow, pad=1, pad_value=1.0)
        if ax is None:
            width = min(12.0, 1.2 * min(nrow, len(x)))
            height = width * grid.shape[0] / grid.shape[1]
            if height > MAX_FIGURE_INCHES:  # a tall grid (e.g. nrow=1): shrink the figure, not the memory
                width, height = width * MAX_FIGURE_INCHES / height, MAX_FIGURE_INCHES
            ax = plt.subplots(figsize=(width, height))[1]
        ax = _get_ax(ax)
        ax.imshow(grid, interpolation="nearest", **shown)
        ax.set_axis_off()
        if title is not None:
            ax.set_title(title)
        return ax

    if isinstance(labels, str) or not isinstance(labels, Sequence) or len(labels) != len(x):
        raise ValueError(f"labels must be a sequence of {len(x)} labels (one per image), got {labels!r}")
    if ax is not None:
        raise ValueError("ax must be None when labels are given: labelled images get their own figure")
    if len(x) > MAX_PANELS:
        raise ValueError(f"labels: at most MAX_PANELS = {MAX_PANELS} labelled images fit in one figure, got "
                         f"{len(x)}; show fewer, or drop labels to tile them into one picture")
    if _LABELLED_PANEL_INCHES * min(nrow, len(x)) > MAX_FIGURE_INCHES:
        raise ValueError(f"nrow={nrow} labelled images per row make a figure wider than MAX_FIGURE_INCHES = "
                         f"{MAX_FIGURE_INCHES:g}; use nrow <= {int(MAX_FIGURE_INCHES // _LABELLED_PANEL_INCHES)}")
    fig, axes = figure_grid(len(x), ncols=nrow, size=_LABELLED_PANEL_INCHES)
    for a, img, label in zip(axes, x, labels, strict=True):
        a.imshow(img[..., 0] if gray else img, interpolation="nearest", **shown)
        a.set_title(str(label), fontsize=8)
        a.set_axis_off()
    if title is not None:
        fig.suptitle(title)
    return fig


def figure_grid(n: int, ncols: int = 3, size: float = 3.0) -> tuple[Figure, list[Axes]]:
    """A figure with ``n`` panels, ``ncols`` per row, each about ``size`` inches square.

    Returns (fig, axes) with ``axes`` a flat list of length n (unused slots of the last row removed).
    """
    n = _check_int(n, "n", 1, MAX_PANELS)
    ncols = min(_check_int(ncols, "ncols", 1), n)
    if isinstance(size, bool) or not isinstance(size, numbers.Real) or not 0 < size < math.inf:
        raise ValueError(f"size must be a positive number of inches, got {size!r}")
    nrows = math.ceil(n / ncols)
    if max(size * ncols, size * nrows) > MAX_FIGURE_INCHES:
        raise ValueError(f"size={size!r} inches per panel gives a {size * ncols:g} x {size * nrows:g} inch figure "
                         f"for {n} panels in {ncols} columns; at most MAX_FIGURE_INCHES = {MAX_FIGURE_INCHES:g} "
                         "per side")
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False,
                             layout="constrained")
    flat = list(axes.ravel())
    for extra in flat[n:]:
        fig.delaxes(extra)
    return fig, flat[:n]


# ----------------------------------------------------------------------------- training curves

def ema(values: ArrayLike, smooth: float) -> np.ndarray:
    """Exponential moving average: s_0 = y_0, s_t = smooth * s_{t-1} + (1 - smooth) * y_t.  (T,) -> (T,)."""
    smooth = _check_smooth(smooth)
    y = _as_array(values, "values").astype(np.float64)
    if y.ndim != 1:
        raise ValueError(f"values must have shape (T,), got {tuple(y.shape)}")
    out = np.empty_like(y)
    acc = y[0] if len(y) else 0.0
    for t, v in enumerate(y):
        acc = smooth * acc + (1 - smooth) * v
        out[t] = acc
    return out


def _floats(values: Any, name: str) -> np.ndarray:
    """A 1D sequence of numbers (or of one-element tensors) as a float64 array (T,)."""
    if isinstance(values, torch.Tensor | np.ndarray):
        arr = _as_array(values, name).astype(np.float64)
        if arr.ndim != 1:
            raise ValueError(f"{name} must be 1-dimensional, got shape {tuple(arr.shape)}")
        return arr
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a sequence of numbers, got {type(values).__name__}")
    try:
        return np.array([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError, RuntimeError) as e:
        raise TypeError(f"{name} must be a sequence of numbers: {e}") from None


def _history_series(history: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Any history shape -> {metric: (x (T,), y (T,))}, x being the "step" values when there are any."""
    records = getattr(history, "records", None)
    if records is not None and not isinstance(history, Mapping):
        history = records
    if isinstance(history, Mapping):
        cols = {str(k): _floats(v, f"history[{k!r}]") for k, v in history.items()}
        steps = cols.pop("step", None)
        out = {}
        for k, y in cols.items():
            if steps is not None and len(steps) != len(y):
                raise ValueError(f"history['step'] has {len(steps)} values but history[{k!r}] has {len(y)}")
            out[k] = (steps if steps is not None else np.arange(len(y), dtype=np.float64), y)
        return out
    if isinstance(history, Sequence) and not isinstance(history, str):
        if not all(isinstance(r, Mapping) for r in history):
            raise TypeError("history must be a dict of lists or a list of dicts; found a non-dict record")
        with_step = all("step" in r for r in history)
        names = list(dict.fromkeys(str(k) for r in history for k in r if k != "step"))
        out = {}
        for k in names:
            rows = [(r["step"] if with_step else i, r[k]) for i, r in enumerate(history) if k in r]
            out[k] = (_floats([x for x, _ in rows], "history 'step' values"),
                      _floats([v for _, v in rows], f"history values of {k!r}"))
        return out
    raise TypeError("history must be a Mapping[str, Sequence] (dict of lists), a Sequence[Mapping] "
                    f"(list of per-step dicts) or have a .records list, got {type(history).__name__}")


def plot_history(history: Any, keys: str | Sequence[str] | None = None, *, ax: Axes | None = None,
                 logy: bool = False, smooth: float = 0.0, title: str | None = None) -> Axes:
    """Training curves, one line per metric, against "step" when the history has it (else the index).

    history: a dict of name -> list of floats, a list of per-step dicts like ``{"step": 0, "loss": 2.3}``,
    or an object with such a list in ``.records`` (e.g. :class:`aigc_course.train.History`).
    smooth: EMA factor in [0, 1); when > 0 the smoothed curve is drawn over the faded raw one.
    Non-finite values (e.g. gaps padded with NaN) are skipped, and so are values <= 0 when ``logy``.
    """
    smooth = _check_smooth(smooth)
    logy = _check_bool(logy, "logy")
    series = _history_series(history)
    if keys is None:
        keys = list(series)
    elif isinstance(keys, str):
        keys = [keys]
    elif not isinstance(keys, Sequence) or not all(isinstance(k, str) for k in keys):
        raise TypeError(f"keys must be a str, a sequence of str or None, got {keys!r}")
    if not keys:
        raise ValueError("history has no metrics to plot")
    for k in keys:
        if k not in series:
            raise ValueError(f"keys: {k!r} is not in the history; available: {list(series)}")
    ax = _get_ax(ax)
    for k in keys:
        x, y = series[k]
        ok = np.isfinite(x) & np.isfinite(y) & (y > 0 if logy else True)
        x, y = x[ok], y[ok]
        if smooth > 0 and len(y):
            (raw,) = ax.plot(x, y, alpha=0.3, linewidth=1.0, label=f"_{k} (raw)")
            ax.plot(x, ema(y, smooth), color=raw.get_color(), label=k)
        else:
            ax.plot(x, y, label=k)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    if len(keys) > 1:
        ax.legend()
    elif title is None:
        ax.set_ylabel(keys[0])
    if title is not None:
        ax.set_title(title)
    return ax


# ----------------------------------------------------------------------------- 2D samples and 1D densities

def _points_2d(x: Any, name: str) -> np.ndarray:
    arr = _as_array(x, name)
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] == 0:
        raise ValueError(f"{name} must have shape (N, 2) with N >= 1, got {tuple(arr.shape)}")
    if arr.shape[0] > MAX_SCATTER_POINTS:
        raise ValueError(f"{name} has {arr.shape[0]:,} points, more than MAX_SCATTER_POINTS = "
                         f"{MAX_SCATTER_POINTS:,}; plot a random subset")
    arr = arr.astype(np.float64)
    bad = int(np.count_nonzero(~np.isfinite(arr).all(axis=1)))
    if bad:
        raise ValueError(f"{name} must hold finite points, got {bad} of {arr.shape[0]} with NaN or inf (a diverged "
                         f"model?); drop them first, e.g. x[torch.isfinite(x).all(dim=1)]")
    return arr


def _limits(lim: Any, points: list[np.ndarray]) -> tuple[tuple[float, float], tuple[float, float]]:
    """(xlim, ylim): from ``lim`` (L -> (-L, L), or (lo, hi)) or from the finite points plus 10% padding."""
    if lim is not None:
        if isinstance(lim, numbers.Real) and not isinstance(lim, bool) and 0 < lim < math.inf:
            return (-float(lim), float(lim)), (-float(lim), float(lim))
        if (isinstance(lim, Sequence) and len(lim) == 2 and all(isinstance(v, numbers.Real) for v in lim)
                and all(math.isfinite(v) for v in lim) and lim[0] < lim[1]):
            return (float(lim[0]), float(lim[1])), (float(lim[0]), float(lim[1]))
        raise ValueError(f"lim must be a positive number L (for [-L, L]) or a pair (lo, hi), got {lim!r}")
    pts = np.concatenate(points)
    pts = pts[np.isfinite(pts).all(axis=1)]
    if len(pts) == 0:
        raise ValueError("samples have no finite points to set the plot limits from; pass lim")
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    pad = np.where(hi > lo, 0.1 * (hi - lo), 1.0)
    return (lo[0] - pad[0], hi[0] + pad[0]), (lo[1] - pad[1], hi[1] + pad[1])


def plot_samples_2d(samples: Any, *, target: Any = None, ax: Axes | None = None, lim: Any = None,
                    s: float = 4, alpha: float = 0.5, label: str | None = None, title: str | None = None,
                    grid_size: int = 200) -> Axes:
    """Scatter (N, 2) samples, optionally over a target distribution.

    target: None; a callable ``log_prob(x (M,2) float32 CPU tensor) -> (M,)`` or an object with a
    ``.log_prob`` method, drawn as grey filled contours of the density (relative to its peak) on a
    ``grid_size`` x ``grid_size`` grid; or an (M, 2) array of reference samples drawn in light grey.
    lim: L for [-L, L] on both axes, a pair (lo, hi), or None to fit the data with 10% padding.
    """
    pts = _points_2d(samples, "samples")
    log_prob = getattr(target, "log_prob", target)
    reference = None
    if target is not None and not callable(log_prob):
        reference = _points_2d(target, "target")
    grid_size = _check_int(grid_size, "grid_size", 2, MAX_DENSITY_GRID)
    if isinstance(s, bool) or not isinstance(s, numbers.Real) or not 0 < s < math.inf:
        raise ValueError(f"s (marker area) must be a positive finite number, got {s!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    xlim, ylim = _limits(lim, [pts] if reference is None else [pts, reference])
    ax = _get_ax(ax)

    if reference is not None:
        ax.scatter(reference[:, 0], reference[:, 1], s=s, alpha=alpha, color="0.75", label="target",
                   linewidths=0)
    elif target is not None:
        gx, gy = np.meshgrid(np.linspace(*xlim, grid_size), np.linspace(*ylim, grid_size))
        grid = torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], axis=1)).float()
        with torch.no_grad():
            logp = _as_array(log_prob(grid), "target(x)").astype(np.float64)
        if logp.shape != (grid_size * grid_size,):
            raise ValueError(f"target log_prob must map (M, 2) to (M,), got output shape {tuple(logp.shape)} "
                             f"for M = {grid_size * grid_size}")
        finite = np.isfinite(logp)
        if not finite.any():
            raise ValueError("target log_prob is not finite anywhere on the plotted grid")
        density = np.where(finite, np.exp(logp - logp[finite].max()), 0.0).reshape(grid_size, grid_size)
        ax.contourf(gx, gy, density, levels=np.linspace(0.02, 1.0, 10), cmap="Greys", alpha=0.6)

    ax.scatter(pts[:, 0], pts[:, 1], s=s, alpha=alpha, label=label, linewidths=0, zorder=3)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    if label is not None or reference is not None:
        ax.legend(loc="upper right", markerscale=3)
    if title is not None:
        ax.set_title(title)
    return ax


def plot_latent_map(coords: Any, labels: Any, *, ax: Axes | None = None, s: float = 6, alpha: float = 0.7,
                    title: str | None = None) -> Axes:
    """Scatter 2-D latent coordinates (N, 2) coloured by their integer class labels (N,), one legend entry per
    class (e.g. the digit), classes in increasing order; at most 20 classes (tab20 colours)."""
    pts = _points_2d(coords, "coords")
    lab = _as_array(labels, "labels")
    if lab.shape != (pts.shape[0],):
        raise ValueError(f"labels must have shape ({pts.shape[0]},) like coords, got {tuple(lab.shape)}")
    if not (np.issubdtype(lab.dtype, np.integer) or lab.dtype == bool):
        raise TypeError(f"labels must be integer class labels, got dtype {lab.dtype}")
    classes = np.unique(lab)
    if len(classes) > 20:
        raise ValueError(f"labels hold {len(classes)} classes; at most 20 can be told apart by colour")
    if isinstance(s, bool) or not isinstance(s, numbers.Real) or not 0 < s < math.inf:
        raise ValueError(f"s (marker area) must be a positive finite number, got {s!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    ax = _get_ax(ax)
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for i, c in enumerate(classes):
        sel = lab == c
        ax.scatter(pts[sel, 0], pts[sel, 1], s=s, alpha=alpha, color=cmap(i), label=str(c), linewidths=0)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=2, frameon=False)
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    if title is not None:
        ax.set_title(title)
    return ax


def plot_density_1d(x: Any, densities: Mapping[str, Any], *, ax: Axes | None = None,
                    fill: str | Iterable[str] | None = None, title: str | None = None) -> Axes:
    """Several 1D curves over the grid x (G,), e.g. ``{"p(x)": p, "q(x)": q}``, each of shape (G,).

    fill: names of the curves to fill down to zero (one name, several, or None for none).
    """
    grid = _as_array(x, "x").astype(np.float64)
    if grid.ndim != 1 or len(grid) < 2:
        raise ValueError(f"x must have shape (G,) with G >= 2, got {tuple(grid.shape)}")
    _require_finite(grid, "x")
    if not isinstance(densities, Mapping) or not densities:
        raise TypeError(f"densities must be a non-empty Mapping[str, array (G,)], got {densities!r:.80}")
    filled = set() if fill is None else {fill} if isinstance(fill, str) else set(fill)
    if not filled <= set(densities):
        raise ValueError(f"fill names {sorted(filled - set(densities))} are not in densities {list(densities)}")
    curves = {}
    for name, values in densities.items():  # every curve is checked before anything is drawn
        y = _as_array(values, f"densities[{name!r}]").astype(np.float64)
        if y.shape != grid.shape:
            raise ValueError(f"densities[{name!r}] must have shape {grid.shape} like x, got {tuple(y.shape)}")
        curves[name] = _require_finite(y, f"densities[{name!r}]")
    ax = _get_ax(ax)
    for name, y in curves.items():
        (line,) = ax.plot(grid, y, label=str(name))
        if name in filled:
            ax.fill_between(grid, 0.0, y, color=line.get_color(), alpha=0.25)
    ax.set_xlabel("x")
    ax.legend()
    if title is not None:
        ax.set_title(title)
    return ax


# ----------------------------------------------------------------------------- live training plot

def _frontend_display() -> Callable[..., Any] | None:
    """IPython's ``display`` when running inside a notebook kernel, else None (plain Python, terminal)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    if shell is None or not hasattr(shell, "kernel"):
        return None
    from IPython.display import display

    return display


class LivePlot:
    """Training curves that redraw in place in a notebook while a loop runs.

    >>> live = LivePlot(keys=("loss",), every=50)
    >>> for step in range(steps):
    ...     live.update(step, loss=loss.item())      # or pass ``live`` to train(callbacks=[live])
    >>> live.close()                                 # final picture

    Every ``every``-th call redraws; outside a notebook kernel, or with ``enabled=False``, values are only
    recorded. ``history`` is a dict of lists with a "step" column (NaN where a metric was not given).
    The figure is rendered to a PNG each time and never registered with pyplot, so nothing leaks.
    """

    def __init__(self, keys: Sequence[str] | None = None, every: int = 50, logy: bool = False,
                 smooth: float = 0.0, title: str | None = None, enabled: bool = True) -> None:
        if isinstance(keys, str):
            keys = (keys,)
        if keys is not None and (not isinstance(keys, Sequence) or not all(isinstance(k, str) for k in keys)):
            raise TypeError(f"keys must be a sequence of metric names or None, got {keys!r}")
        self.keys = None if keys is None else tuple(keys)
        self.every = _check_int(every, "every", 1)
        self.logy = _check_bool(logy, "logy")
        self.smooth = _check_smooth(smooth)
        self.title = title
        self.enabled = _check_bool(enabled, "enabled")
        self.records: list[dict[str, float]] = []
        self._calls = 0
        self._drawn_at = 0  # number of records in the last picture
        self._handle: Any = None
        self._closed = False

    def update(self, step: int, **metrics: float | torch.Tensor) -> None:
        """Record ``metrics`` at ``step``; redraw every ``every`` calls."""
        if isinstance(step, bool) or not isinstance(step, numbers.Integral):
            raise TypeError(f"step must be an int, got {type(step).__name__}")
        record = {"step": float(step)}
        for k, v in metrics.items():
            try:
                record[k] = float(v)
            except (TypeError, ValueError, RuntimeError):
                raise TypeError(f"metric {k!r} must be a number or one-element tensor, got {v!r:.80}") from None
        self.records.append(record)
        self._calls += 1
        if self._calls % self.every == 0:
            self._draw()

    def __call__(self, step: int, metrics: Mapping[str, float]) -> None:
        """Callback form ``(step, metrics)`` used by :func:`aigc_course.train.train`."""
        if not isinstance(metrics, Mapping):
            raise TypeError(f"metrics must be a dict of name -> float, got {type(metrics).__name__}")
        if "step" in metrics:
            raise ValueError("metrics must not contain 'step'; it is passed as the first argument")
        self.update(step, **metrics)

    @property
    def history(self) -> dict[str, list[float]]:
        """The recorded values as {"step": [...], metric: [...]}, all columns of the same length."""
        names = dict.fromkeys(k for r in self.records for k in r)
        return {k: [r.get(k, math.nan) for r in self.records] for k in names}

    def _keys_to_plot(self) -> list[str]:
        present = dict.fromkeys(k for r in self.records for k in r if k != "step")
        return [k for k in self.keys if k in present] if self.keys is not None else list(present)

    def plot(self, ax: Axes | None = None) -> Axes:
        """Draw the recorded curves with :func:`plot_history` (e.g. in a script, after training)."""
        keys = self._keys_to_plot()
        if not keys:
            raise ValueError(f"nothing to plot yet: no values recorded for keys {self.keys or 'any'}")
        return plot_history(self.records, keys, ax=ax, logy=self.logy, smooth=self.smooth, title=self.title)

    def close(self) -> None:
        """Draw the final picture (if anything changed since the last one); later updates only record."""
        self._draw()
        self._closed = True

    def _draw(self) -> None:
        if (not self.enabled or self._closed or self._drawn_at == len(self.records)
                or not self._keys_to_plot()):
            return
        display = _frontend_display()
        if display is None:
            return
        from IPython.display import Image

        fig = Figure(figsize=(6.4, 3.6))
        self.plot(ax=fig.add_subplot())
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        image = Image(data=buf.getvalue(), format="png")
        if self._handle is None:
            self._handle = display(image, display_id=True)
        else:
            self._handle.update(image)
        self._drawn_at = len(self.records)

    def __repr__(self) -> str:
        metrics = [k for k in self.history if k != "step"]
        return f"LivePlot({len(self.records)} records, metrics={metrics}, every={self.every})"
