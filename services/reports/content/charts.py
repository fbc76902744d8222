"""Weekly charts of a payer's metrics with the baseline band, as images for the PDF.

matplotlib's object API on the Agg canvas (no pyplot, no display, safe in worker threads),
one figure per chart shape laid out once and reused for every payer of a document (only the
data changes), rendered at 150 dpi.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator
from PIL import Image

from services.reports.content.documents import (
    DECISION_DAYS,
    DENIAL_RATE,
    METRIC_TITLES,
    PAYMENT_RATIO,
)
from services.reports.content.weekly import Point, Week

DPI = 150
WIDTH_INCHES = 6.7
PANEL_INCHES = 1.75
MAX_TICKS = 14
LINE = "#1f4e79"
BAND = "#9ec5e8"
BASELINE = "#555555"
_PERCENT = FuncFormatter(lambda value, _: f"{value * 100:.0f}%")


def _points(week: Week, metric: int) -> Point:
    if metric == DENIAL_RATE:
        return week.denial_rate
    if metric == DECISION_DAYS:
        return week.decision_days
    return week.payment_ratio


def _values(points: Sequence[Point], name: str) -> np.ndarray:
    return np.array(
        [np.nan if getattr(p, name) is None else getattr(p, name) for p in points], dtype=float
    )


@dataclass
class _Panel:
    axes: Axes
    band: PolyCollection
    baseline: Line2D
    weekly: Line2D


class Charts:
    """Renders the charts of one document. Its weeks are the same for every payer, so each
    chart shape (which metrics) is laid out once; a payer's chart only changes the data."""

    def __init__(self, weeks: Sequence[Week]) -> None:
        self._weeks = len(weeks)
        self._x = np.arange(self._weeks, dtype=float)
        step = max(1, -(-self._weeks // MAX_TICKS))
        self._ticks = self._x[::step]
        self._labels = [f"{weeks[int(i)].start.day} {weeks[int(i)].start:%b}" for i in self._ticks]
        self._figures: dict[tuple[int, ...], tuple[FigureCanvasAgg, list[_Panel]]] = {}

    def _figure(self, metrics: tuple[int, ...]) -> tuple[FigureCanvasAgg, list[_Panel]]:
        if metrics in self._figures:
            return self._figures[metrics]
        height = PANEL_INCHES * len(metrics)
        figure = Figure(figsize=(WIDTH_INCHES, height), dpi=DPI)
        canvas = FigureCanvasAgg(figure)
        figure.subplots_adjust(
            left=0.1, right=0.98, top=1 - 0.22 / height, bottom=0.42 / height, hspace=0.5
        )
        panels = []
        for axes, metric in zip(
            figure.subplots(len(metrics), 1, sharex=True, squeeze=False)[:, 0], metrics, strict=True
        ):
            # A title as plain text: set_title measures the tick labels at every draw.
            axes.text(0, 1.04, METRIC_TITLES[metric], fontsize=8, transform=axes.transAxes)
            axes.tick_params(labelsize=6.5)
            axes.grid(axis="y", linewidth=0.3, color="#cccccc")
            if metric in (DENIAL_RATE, PAYMENT_RATIO):
                axes.yaxis.set_major_formatter(_PERCENT)
            axes.yaxis.set_major_locator(MaxNLocator(4))
            axes.set_xticks(self._ticks, self._labels)
            axes.set_xlim(-0.5, max(self._weeks - 0.5, 0.5))
            band = PolyCollection([], facecolor=BAND, alpha=0.6, linewidth=0)
            axes.add_collection(band)
            (baseline,) = axes.plot([-0.5, self._weeks - 0.5], [0, 0], color=BASELINE,
                                    linewidth=0.8, linestyle="--")  # fmt: skip
            (weekly,) = axes.plot(self._x, np.zeros(self._weeks), color=LINE, linewidth=1.4,
                                  marker="o", markersize=2.5)  # fmt: skip
            panels.append(_Panel(axes, band, baseline, weekly))
        panels[-1].axes.set_xlabel("week beginning", fontsize=6.5)
        self._figures[metrics] = (canvas, panels)
        return canvas, panels

    def weekly(
        self, weeks: Sequence[Week], baseline: dict[int, float | None], metrics: Sequence[int]
    ) -> Image.Image:
        """One panel per metric: each week's value, its band, the baseline value."""
        canvas, panels = self._figure(tuple(metrics))
        for panel, metric in zip(panels, metrics, strict=True):
            points = [_points(week, metric) for week in weeks]
            low, high, value = (_values(points, name) for name in ("low", "high", "value"))
            has_band = ~(np.isnan(low) | np.isnan(high))
            panel.band.set_verts(
                [
                    [(i - 0.5, lo), (i + 0.5, lo), (i + 0.5, hi), (i - 0.5, hi)]
                    for i, lo, hi in zip(
                        self._x[has_band], low[has_band], high[has_band], strict=True
                    )
                ]
            )
            center = baseline.get(metric)
            panel.baseline.set_visible(center is not None)
            panel.baseline.set_ydata([center or 0.0, center or 0.0])
            panel.weekly.set_ydata(value)
            shown = np.concatenate([low, high, value, [center if center is not None else np.nan]])
            shown = shown[~np.isnan(shown)]
            bottom, top = (float(shown.min()), float(shown.max())) if shown.size else (0.0, 1.0)
            pad = (top - bottom) * 0.08 or max(abs(top) * 0.1, 0.01)
            panel.axes.set_ylim(bottom - pad, top + pad)
        canvas.draw()
        # RGB pixels, which the PDF compresses as they are (no PNG encoded only to be decoded).
        return Image.frombuffer(
            "RGBA", canvas.get_width_height(), canvas.buffer_rgba(), "raw", "RGBA", 0, 1
        ).convert("RGB")


def chart_size(panels: int) -> tuple[float, float]:
    """The chart's size in inches."""
    return WIDTH_INCHES, PANEL_INCHES * panels
