"""Live health graphs: response time (with the 200 ms target and 500 ms acceptable lines),
error rate and throughput, drawn with plotext; and a one-line summary for small screens.

Graphs are redrawn by the app on a timer (1 s by default), never per sample. Line colours
come from the theme's variables; every line is also named in the title with its latest
value, so the graphs read without colour.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Unpack

from rich.text import Text
from textual.app import ComposeResult, RenderResult
from textual.color import Color
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widget import Widget
from textual.widgets import Static

from ..state import Sample
from . import _format as fmt
from ._options import WidgetOptions

SPARK = "▁▂▃▄▅▆▇█"


def plot_color(value: str | None) -> str | tuple[int, int, int]:
    """A theme colour as plotext wants it: RGB, or a plain name for 16-colour themes."""
    if not value:
        return "default"
    if value.startswith("ansi_"):
        name = value.removeprefix("ansi_")
        if name.startswith("bright_"):
            return name.removeprefix("bright_") + "+"
        return "default" if name == "default" else name
    try:
        color = Color.parse(value.split()[0])
    except Exception:
        return "default"
    return color.rgb


def sparkline(values: Sequence[float | None], width: int) -> str:
    """Unicode bars for the last ``width`` values (no plot needed at 80x24)."""
    data = [v for v in values if v is not None][-width:]
    if not data:
        return ""
    top = max(data) or 1.0
    return "".join(SPARK[min(len(SPARK) - 1, int(v / top * (len(SPARK) - 1)))] for v in data)


PLOTS = ("rt-graph", "err-graph", "rps-graph")


@functools.cache
def plot_class() -> type[Widget]:
    """The graph widget (plotext's), defined on first use: importing plotext (~20 ms) and
    building three graphs waits until the room's first frame is painted."""
    from textual_plotext import PlotextPlot

    class HealthPlot(PlotextPlot):
        """A PlotextPlot that follows 16-colour themes (plotext's "clear" theme there),
        and builds its picture only when its data, size or theme changed.

        Textual asks a widget to render again whenever the screen repaints it: a dialog
        or the help opening over the room, a zoom, a focus move. plotext builds the whole
        plot in Python each time (~10-25 ms a graph), so three graphs made most of those
        keys' cost while drawing the same picture."""

        def __init__(self, **kwargs: Unpack[WidgetOptions]) -> None:
            super().__init__(**kwargs)
            self._version = 0  # bumped by :meth:`changed`
            self._built: tuple[object, Text] | None = None

        def changed(self) -> None:
            """The plot's data or decorations changed: build it again when next drawn."""
            self._version += 1
            self.refresh()

        def _register_theme(self, app_theme_name: str) -> None:
            self._version += 1  # plotext's colours for the new theme: a new picture
            super()._register_theme(app_theme_name)

        def render(self) -> RenderResult:
            ansi = self.app.current_theme.name.startswith("ansi")
            self.theme = "clear" if ansi else "auto"
            key = (self._version, self.size, self.app.theme, self.theme)
            if self._built is None or self._built[0] != key:
                built = super().render()
                assert isinstance(built, Text)
                self._built = (key, built)
            return self._built[1].copy()

        def on_resize(self) -> None:
            for graphs in self.ancestors_with_self:
                if isinstance(graphs, HealthGraphs):
                    graphs.on_resize()
                    return

    return HealthPlot


def __getattr__(name: str) -> Any:
    if name == "HealthPlot":
        return plot_class()
    raise AttributeError(name)


class HealthGraphs(Vertical, can_focus=True):
    """Three graphs over the same window of samples, plus a text strip for small screens."""

    ALLOW_MAXIMIZE = True

    def __init__(
        self,
        *,
        target_ms: float = 200.0,
        acceptable_ms: float = 500.0,
        window: int = 120,
        **kwargs: Unpack[WidgetOptions],
    ) -> None:
        super().__init__(**kwargs)
        self.target_ms = target_ms
        self.acceptable_ms = acceptable_ms
        self.window = window
        self.samples: tuple[Sample, ...] = ()
        self.marks: tuple[tuple[float, str], ...] = ()
        self.live = False
        self.now = 0.0
        self._strip: Content | None = None
        self.drawn_for: tuple[object, ...] | None = None  # the sizes the text was fitted to
        self._marks_given: tuple[tuple[float, str], ...] = ()
        self.plots_ready = False  # placeholders until mount_plots (after the first frame)

    def fitted_sizes(self) -> tuple[object, ...]:
        """This widget's size and its graphs': titles and the strip are fitted to them."""
        return (self.size, *(graph.size for graph in self.query(".plot")))

    def on_resize(self) -> None:
        """A new size (a breakpoint, a zoom, the terminal) refits titles and the strip."""
        if self.drawn_for is not None and self.drawn_for != self.fitted_sizes():
            self.plot(self.samples, self.now, self._marks_given, live=self.live)

    def compose(self) -> ComposeResult:
        yield Static(id="rt-graph", classes="plot")  # placeholders: see mount_plots
        with Horizontal(id="small-graphs"):
            yield Static(id="err-graph", classes="plot")
            yield Static(id="rps-graph", classes="plot")
        yield Static(id="health-strip")

    async def mount_plots(self) -> None:
        """Put the graphs in their placeholders' places and draw what was plotted so far;
        the room calls this once its first frame is painted."""
        if self.plots_ready:
            return
        widget = plot_class()
        for name in PLOTS:
            placeholder = self.query_one(f"#{name}")
            parent = placeholder.parent
            assert isinstance(parent, Widget)
            index = parent.children.index(placeholder)
            await placeholder.remove()
            await parent.mount(widget(id=name, classes="plot"), before=index)
        if any(not self.query(f"#{name}") for name in PLOTS):
            return  # the room was torn down meanwhile (it closed right after it opened)
        self.plots_ready = True
        self.plot(self.samples, self.now or None, self._marks_given, live=self.live)

    def on_mount(self) -> None:
        self.border_title = "[3] Health"
        self.plot(())

    def plot(
        self,
        samples: Sequence[Sample],
        now: float | None = None,
        marks: Sequence[tuple[float, str]] = (),
        *,
        live: bool = False,
    ) -> None:
        """Redraw all three graphs and the strip from the newest ``window`` samples. The
        time axis ends at ``now`` (so a gap before it is the age of the last sample), and a
        deployment's or rollback's start is a vertical break."""
        self.drawn_for = self.fitted_sizes()
        self._marks_given = tuple(marks)
        self.samples = tuple(samples)[-self.window :]
        self.live = live
        data = self.samples
        if now is None:
            now = data[-1].ts if data else 0.0
        self.now = now
        colors = self.app.theme_variables
        xs = [s.ts - now for s in data]
        start = xs[0] if xs else 0.0
        self.marks = tuple((ts - now, label) for ts, label in marks if ts - now >= start)
        if not self.plots_ready:
            self.tick(now)  # the strip and the subtitle; the graphs come with mount_plots
            return
        if len(self.query(".plot")) < len(PLOTS):
            return  # the room is being torn down (children go first): nothing to draw on
        self._plot_rt(xs, data, colors)
        self._plot_simple(
            "#err-graph",
            "Errors",
            xs,
            [None if s.error_rate is None else s.error_rate * 100 for s in data],
            colors.get("graph-errors"),
            lambda v: f"{v:.2f}%",
        )
        self._plot_simple(
            "#rps-graph",
            "Throughput",
            xs,
            [s.rps for s in data],
            colors.get("graph-rps"),
            lambda v: f"{v:.0f} req/s",
        )
        self.tick(now)

    def tick(self, now: float) -> None:
        """The clock moved: the age of the last sample (strip and subtitle), nothing else."""
        self.now = now
        data = self.samples
        strip = self.strip(data)
        shown = self.query("#health-strip")
        if not shown:  # the room is being torn down: a last clock tick has nothing to draw
            return
        if not fmt.same(self._strip, strip):
            self._strip = strip
            shown.first(Static).update(strip)
        last = data[-1] if data else None
        source = "live" if self.live else "monitor"
        fmt.titles(
            self,
            subtitle=f"{source} · {fmt.age(max(0.0, now - last.ts))}"
            if last
            else "waiting for samples",
        )

    def _plot_rt(self, xs: list[float], data: Sequence[Sample], colors: dict[str, str]) -> None:
        graph: Any = self.query_one("#rt-graph")
        plt = graph.plt
        plt.clear_data()
        plt.clear_figure()
        last = data[-1] if data else None
        title = "Response time"
        if last is not None:
            title += f"  p95 {fmt.ms(last.p95)}  p50 {fmt.ms(last.p50)}  p99 {fmt.ms(last.p99)}"
            if graph.size.width and len(title) > graph.size.width - 2:
                title = f"p95 {fmt.ms(last.p95)} p99 {fmt.ms(last.p99)}"
        plt.title(title)
        top = self.acceptable_ms * 1.15
        for name in ("p50", "p95", "p99"):
            ys = [getattr(s, name) for s in data]
            points = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None]
            if points:
                top = max(top, max(y for _, y in points) * 1.1)
                plt.plot(
                    [p[0] for p in points],
                    [p[1] for p in points],
                    color=plot_color(colors.get(f"graph-{name}")),
                    marker="braille",
                )
        x0 = xs[0] if xs else -60.0
        x1 = 0.0  # now: the gap after the last point is its age
        if x0 >= x1:
            x0 = x1 - 1
        for x, label in self.marks:  # a visible break where a deployment/rollback began
            plt.vline(x, color=plot_color(colors.get("graph-acceptable")))
            plt.text(
                label[:14],
                x=x,
                y=top * 0.97,
                color=plot_color(colors.get("graph-acceptable")),
                background=self._canvas(colors),
                alignment="left",
            )
        for value, label, var in (
            (self.target_ms, "target", "graph-target"),
            (self.acceptable_ms, "acceptable", "graph-acceptable"),
        ):
            plt.hline(value, color=plot_color(colors.get(var)))
            plt.text(
                f"{label} {value:.0f}",
                x=x0,
                y=value,
                color=plot_color(colors.get(var)),
                background=self._canvas(colors),
                alignment="left",
            )
        plt.xlim(x0, x1)
        plt.ylim(0, top)
        plt.xlabel("seconds before now")
        graph.changed()

    def _canvas(self, colors: dict[str, str]) -> str | tuple[int, int, int]:
        """The plot's background, so labels drawn over the canvas do not show a box."""
        if self.app.current_theme.name.startswith("ansi"):
            return "default"
        return plot_color(colors.get("surface"))

    def _plot_simple(
        self,
        selector: str,
        title: str,
        xs: list[float],
        ys: list[float | None],
        color: str | None,
        label: object,
    ) -> None:
        graph: Any = self.query_one(selector)
        plt = graph.plt
        plt.clear_data()
        plt.clear_figure()
        points = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None]
        latest = f"  {label(points[-1][1])}" if points else ""  # type: ignore[operator]
        plt.title(f"{title}{latest}")
        if points:
            plt.plot(
                [p[0] for p in points],
                [p[1] for p in points],
                color=plot_color(color),
                marker="braille",
            )
            plt.ylim(0, max(max(p[1] for p in points) * 1.2, 0.1))
        else:
            plt.ylim(0, 1)
        graph.changed()

    def strip(self, data: Sequence[Sample]) -> Content:
        """``p95 184 ms ▂▃▅▇ · err 0.12% · 143 req/s``: the graphs in one line."""
        if not data:
            return Content.styled("health: waiting for samples", "$foreground-muted")
        last = data[-1]
        p95 = last.p95 or 0.0
        style = "$success"
        if p95 > self.acceptable_ms:
            style = "bold $error"
        elif p95 > self.target_ms:
            style = "$warning"
        age = fmt.age(max(0.0, self.now - last.ts)) if self.now else ""
        head = Content.assemble(
            ("p95 ", "$foreground-muted"),
            (fmt.ms(last.p95), style),
            ("  err ", "$foreground-muted"),
            fmt.percent(last.error_rate),
            "  ",
            fmt.rate(last.rps),
            ("  " + age + " ", "$foreground-muted"),
        )
        width = max(0, self.size.width - 2 - head.cell_length) if self.size.width else 20
        return Content.assemble(head, (sparkline([s.p95 for s in data], width), style))
