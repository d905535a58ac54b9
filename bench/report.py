"""From measurements to numbers: one row per deployment and stream count, printed as a table,
written as a markdown report and plotted (an SVG written by hand; a PNG too if matplotlib is
installed)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.clients import Stream
from bench.measure import Level

LAG_BUDGET = 0.100  # seconds of added p99 lag the target allows


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(q / 100 * len(ordered)) - 1, 0)]


def lags(streams: list[Stream]) -> list[float]:
    return [lag for stream in streams for lag in stream.lags()]


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _per(total: float | None, count: int) -> float | None:
    return None if total is None or count == 0 else total / count


@dataclass(frozen=True)
class Row:
    config: str
    streams: int
    ttft_added: tuple[float | None, float | None]  # p50, p95 of noboxweb minus direct
    direct_lag: tuple[float | None, float | None]  # p50, p99
    relay_lag: tuple[float | None, float | None]
    watcher_lag: tuple[float | None, float | None] | None
    added_p99: float | None  # the worse of senders and watchers, minus direct
    lost: int  # chunks missing from what the sockets rebuilt live
    expected: int
    not_whole: int  # sockets whose text is not the `done` text, or that got no `done`
    sockets: int
    direct_lost: int
    ack_p50: float | None
    cpu_per_chunk: float | None  # seconds of app CPU per upstream chunk
    direct_cpu_per_chunk: float | None  # the direct clients' CPU per chunk they read
    sim_cpu_per_chunk: float | None
    db_sessions_per_reply: float | None
    redis_per_delta: float | None
    redis_per_chunk: float | None


def row(level: Level) -> Row:
    direct_ttft = [s.ttft for s in level.direct if s.ttft is not None]
    relay_ttft = [s.ttft for s in level.senders if s.ttft is not None]
    direct_lags, relay_lags, watch_lags = (
        lags(level.direct),
        lags(level.senders),
        lags(level.watchers),
    )
    direct_p99 = percentile(direct_lags, 99)
    worst_p99 = max(
        (p for p in (percentile(relay_lags, 99), percentile(watch_lags, 99)) if p is not None),
        default=None,
    )
    sockets = [*level.senders, *level.watchers]
    upstream_chunks = level.streams * level.chunks
    return Row(
        config=level.config,
        streams=level.streams,
        ttft_added=(
            _minus(percentile(relay_ttft, 50), percentile(direct_ttft, 50)),
            _minus(percentile(relay_ttft, 95), percentile(direct_ttft, 95)),
        ),
        direct_lag=(percentile(direct_lags, 50), direct_p99),
        relay_lag=(percentile(relay_lags, 50), percentile(relay_lags, 99)),
        watcher_lag=(
            (percentile(watch_lags, 50), percentile(watch_lags, 99)) if level.watchers else None
        ),
        added_p99=_minus(worst_p99, direct_p99),
        lost=sum(level.chunks - len(s.arrivals) for s in sockets),
        expected=level.chunks * len(sockets),
        not_whole=sum(not s.whole for s in sockets),
        sockets=len(sockets),
        direct_lost=sum(level.chunks - len(s.arrivals) for s in level.direct),
        ack_p50=percentile(level.acks, 50),
        cpu_per_chunk=_per(level.app_cpu, upstream_chunks),
        direct_cpu_per_chunk=_per(level.direct_cpu, upstream_chunks),
        sim_cpu_per_chunk=_per(level.sim_cpu, upstream_chunks),
        db_sessions_per_reply=_per(level.pg_sessions, level.streams),
        redis_per_delta=_per(level.redis_calls, level.deltas),
        redis_per_chunk=_per(level.redis_calls, upstream_chunks),
    )


# --- formatting -------------------------------------------------------------------------------


def ms(seconds: float | None, signed: bool = False) -> str:
    if seconds is None:
        return "—"
    sign = "+" if signed and seconds >= 0 else ""
    if abs(seconds) >= 10:
        return f"{sign}{seconds:.1f} s"
    if abs(seconds) >= 1:
        return f"{sign}{seconds:.2f} s"
    return (
        f"{sign}{seconds * 1000:.0f} ms"
        if abs(seconds) >= 0.01
        else f"{sign}{seconds * 1000:.1f} ms"
    )


def pair(values: tuple[float | None, float | None] | None, signed: bool = False) -> str:
    return "—" if values is None else f"{ms(values[0], signed)} / {ms(values[1], signed)}"


def micros(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1e6:.0f} µs"


def number(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


HEADERS = (
    "config",
    "streams",
    "added TTFT p50 / p95",
    "lag p50 / p99, direct",
    "lag p50 / p99, noboxweb",
    "lag p50 / p99, watchers (process 2)",
    "added p99 lag",
    "chunks lost",
    "sockets without whole reply",
    "ack p50",
    "app CPU / chunk (direct reader)",
    "new DB sessions / reply",
    "Redis cmds / delta (/ chunk)",
)


def cells(r: Row) -> list[str]:
    lost = f"{r.lost} of {r.expected}" + (f" ({r.lost / r.expected:.0%})" if r.lost else "")
    return [
        r.config,
        str(r.streams),
        pair(r.ttft_added, signed=True),
        pair(r.direct_lag),
        pair(r.relay_lag),
        pair(r.watcher_lag),
        ms(r.added_p99, signed=True),
        lost,
        f"{r.not_whole} of {r.sockets}",
        ms(r.ack_p50),
        f"{micros(r.cpu_per_chunk)} ({micros(r.direct_cpu_per_chunk)})",
        number(r.db_sessions_per_reply),
        "—"
        if r.redis_per_delta is None
        else f"{number(r.redis_per_delta)} ({number(r.redis_per_chunk)})",
    ]


def text_table(rows: list[Row]) -> str:
    grid = [list(HEADERS), *(cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in grid) for i in range(len(HEADERS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in grid]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(cells(r)) + " |" for r in rows]
    return "\n".join(lines)


def budget_passed(rows: list[Row], config: str) -> str:
    """The first measured stream count whose added p99 lag exceeds the budget."""
    mine = sorted((r for r in rows if r.config == config), key=lambda r: r.streams)
    previous = None
    for r in mine:
        if r.added_p99 is None or r.added_p99 > LAG_BUDGET:
            within = f" (within it at {previous})" if previous else ""
            return f"first passes 100 ms at **{r.streams}** streams{within}"
        previous = r.streams
    top = mine[-1].streams if mine else 0
    return f"stays within 100 ms up to {top} streams (the most measured)"


# --- the plot ---------------------------------------------------------------------------------

COLOURS = {
    "direct": "#888888",
    "embedded": "#1f77b4",
    "production": "#d62728",
    "production, watchers": "#ff7f0e",
}


def series(rows: list[Row]) -> dict[str, list[tuple[int, float | None, float | None]]]:
    """name: [(streams, p50, p99)] for every line of the plot."""
    lines: dict[str, list[tuple[int, float | None, float | None]]] = {}
    for r in sorted(rows, key=lambda r: r.streams):
        if r.config == rows[0].config:
            lines.setdefault("direct", []).append((r.streams, *r.direct_lag))
        lines.setdefault(r.config, []).append((r.streams, *r.relay_lag))
        if r.watcher_lag is not None:
            lines.setdefault(f"{r.config}, watchers", []).append((r.streams, *r.watcher_lag))
    return lines


def svg_plot(rows: list[Row], title: str) -> str:
    """Lag p99 (solid) and p50 (dashed) against concurrent streams, log scale."""
    width, height, left, right, top, bottom = 720, 420, 70, 170, 40, 50
    levels = sorted({r.streams for r in rows})
    low, high = 0, 5  # 10^0 .. 10^5 ms

    def x(streams: int) -> float:
        step = (width - left - right) / max(len(levels) - 1, 1)
        return left + levels.index(streams) * step

    def y(seconds: float) -> float:
        value = min(max(math.log10(max(seconds * 1000, 1)), low), high)
        return height - bottom - (value - low) / (high - low) * (height - top - bottom)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="22" font-size="14">{title}</text>',
    ]
    for power in range(low, high + 1):
        gy, label = y(10**power / 1000), ["1 ms", "10 ms", "100 ms", "1 s", "10 s", "100 s"][power]
        out.append(
            f'<line x1="{left}" x2="{width - right}" y1="{gy:.1f}" y2="{gy:.1f}" stroke="#ddd"/>'
        )
        out.append(f'<text x="{left - 8}" y="{gy + 4:.1f}" text-anchor="end">{label}</text>')
    for streams in levels:
        out.append(
            f'<text x="{x(streams):.1f}" y="{height - bottom + 18}" '
            f'text-anchor="middle">{streams}</text>'
        )
    out.append(
        f'<text x="{(left + width - right) / 2}" y="{height - 12}" text-anchor="middle">'
        "concurrent streams (lag: p99 solid, p50 dashed)</text>"
    )
    for index, (name, points) in enumerate(series(rows).items()):
        colour = COLOURS.get(name, "#2ca02c")
        for column, dash in ((2, ""), (1, ' stroke-dasharray="5,4"')):
            xy = [f"{x(p[0]):.1f},{y(v):.1f}" for p in points if (v := p[column]) is not None]
            out.append(
                f'<polyline points="{" ".join(xy)}" fill="none" stroke="{colour}" '
                f'stroke-width="2"{dash}/>'
            )
        ly = top + 20 + index * 20
        out.append(
            f'<line x1="{width - right + 15}" x2="{width - right + 40}" y1="{ly}" y2="{ly}" '
            f'stroke="{colour}" stroke-width="2"/>'
        )
        out.append(f'<text x="{width - right + 46}" y="{ly + 4}">{name}</text>')
    out.append("</svg>")
    return "\n".join(out)


def png_plot(rows: list[Row], title: str, path: Path) -> bool:
    """The same plot with matplotlib, where it is installed (it is not a dependency)."""
    try:
        import matplotlib  # type: ignore[import-not-found, unused-ignore]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return False
    figure, axes = plt.subplots(figsize=(8, 4.5))
    for name, points in series(rows).items():
        colour = COLOURS.get(name, "#2ca02c")
        for column, style in ((2, "-"), (1, "--")):
            shown = [(p[0], v * 1000) for p in points if (v := p[column]) is not None]
            label = name if column == 2 else None
            axes.plot(*zip(*shown, strict=True), style, color=colour, label=label, marker="o")
    axes.set_yscale("log")
    axes.set_xlabel("concurrent streams (lag: p99 solid, p50 dashed)")
    axes.set_ylabel("chunk lag, ms")
    axes.set_title(title)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True
