"""The console's small chart, drawn server-side as SVG geometry (no JavaScript on the page).

`run_chart` turns recent runs into bars (duration) and a line (rows written), each scaled to its
own axis; the template draws them with plain SVG elements, so the page works offline and under a
strict Content-Security-Policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

WIDTH = 640
HEIGHT = 180
PAD_LEFT = 48
PAD_RIGHT = 56
PAD_TOP = 12
PAD_BOTTOM = 24


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass
class RunChart:
    width: int = WIDTH
    height: int = HEIGHT
    bars: list[Bar] = field(default_factory=list)
    line: str = ""  # polyline points
    dots: list[tuple[float, float, str]] = field(default_factory=list)
    max_duration: float = 0.0
    max_rows: int = 0
    plot_left: int = PAD_LEFT
    plot_right: int = WIDTH - PAD_RIGHT
    plot_top: int = PAD_TOP
    plot_bottom: int = HEIGHT - PAD_BOTTOM
    first_label: str = ""
    last_label: str = ""

    @property
    def empty(self) -> bool:
        return not self.bars


@dataclass(frozen=True)
class RunPoint:
    run_id: str
    label: str  # start time, short
    duration_seconds: float
    rows_written: int


def run_chart(points: list[RunPoint]) -> RunChart:
    """Bars of duration and a line of rows written, oldest run on the left."""
    chart = RunChart()
    if not points:
        return chart
    plot_w = chart.plot_right - chart.plot_left
    plot_h = chart.plot_bottom - chart.plot_top
    slot = plot_w / len(points)
    chart.max_duration = max(p.duration_seconds for p in points) or 1.0
    chart.max_rows = max(p.rows_written for p in points) or 1
    coords = []
    for i, p in enumerate(points):
        bar_h = plot_h * p.duration_seconds / chart.max_duration
        x = chart.plot_left + i * slot
        chart.bars.append(
            Bar(
                x=round(x + slot * 0.15, 1),
                y=round(chart.plot_bottom - bar_h, 1),
                width=round(max(slot * 0.7, 1.0), 1),
                height=round(bar_h, 1),
                title=f"{p.run_id}: {p.duration_seconds:.1f} s, {p.rows_written} rows",
            )
        )
        cx = round(x + slot / 2, 1)
        cy = round(chart.plot_bottom - plot_h * p.rows_written / chart.max_rows, 1)
        coords.append(f"{cx},{cy}")
        chart.dots.append((cx, cy, f"{p.run_id}: {p.rows_written} rows written"))
    chart.line = " ".join(coords)
    chart.first_label = points[0].label
    chart.last_label = points[-1].label
    return chart
