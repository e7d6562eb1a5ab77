"""Plots as inline SVG strings: no plotting library, no network, nothing to load at view time."""

from __future__ import annotations

from html import escape

W, H, PAD_L, PAD_B, PAD_T, PAD_R = 640, 340, 70, 50, 30, 20
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def _svg(body: str, title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{escape(title)}">'
        f'<rect width="{W}" height="{H}" fill="#ffffff"/>'
        f'<text x="{W / 2}" y="18" text-anchor="middle" font-size="14" font-weight="bold">{escape(title)}</text>{body}</svg>'
    )


def _scale(lo, hi, a, b):
    if hi == lo:
        lo, hi = lo - 1, hi + 1
    return lambda v: a + (v - lo) / (hi - lo) * (b - a)


def _axes(xlabel: str, ylabel: str, xticks, yticks) -> str:
    x0, y0, x1, y1 = PAD_L, H - PAD_B, W - PAD_R, PAD_T
    out = [f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#333"/><line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="#333"/>']
    for pos, label in xticks:
        out.append(
            f'<line x1="{pos:.1f}" y1="{y0}" x2="{pos:.1f}" y2="{y0 + 4}" stroke="#333"/>'
            f'<text x="{pos:.1f}" y="{y0 + 16}" text-anchor="middle" font-size="11">{escape(label)}</text>'
        )
    for pos, label in yticks:
        out.append(
            f'<line x1="{x0 - 4}" y1="{pos:.1f}" x2="{x1}" y2="{pos:.1f}" stroke="#eee"/>'
            f'<text x="{x0 - 6}" y="{pos + 4:.1f}" text-anchor="end" font-size="11">{escape(label)}</text>'
        )
    out.append(f'<text x="{(x0 + x1) / 2}" y="{H - 10}" text-anchor="middle" font-size="12">{escape(xlabel)}</text>')
    out.append(
        f'<text x="16" y="{(y0 + y1) / 2}" text-anchor="middle" font-size="12" transform="rotate(-90 16 {(y0 + y1) / 2})">{escape(ylabel)}</text>'
    )
    return "".join(out)


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Ticks at 1, 2 or 5 x 10^k steps covering [lo, hi] (about ``n`` of them)."""
    import math

    if hi == lo:
        lo, hi = lo - 1, hi + 1
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    ticks = [first + i * step for i in range(int(math.ceil((hi - first) / step - 1e-9)) + 1)]
    return [round(t, 12) for t in ticks]


def tick_label(v: float, ticks: list[float]) -> str:
    """Every label with the decimals the step needs, no more (0.98, 0.99, 1.00; 20, 40, 60)."""
    import math

    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else 1
    decimals = max(0, -math.floor(math.log10(step))) if step else 0
    return f"{v:.{decimals}f}"


def _labelled(ticks, scale):
    return [(scale(v), tick_label(v, ticks)) for v in ticks]


def pareto_front(points: list[tuple[str, float, float]]) -> set[str]:
    """Names not dominated: no other point is at least as fast and at least as accurate, and better in one."""
    front = set()
    for n, x, y in points:
        if not any((x2 <= x and y2 >= y) and (x2 < x or y2 > y) for n2, x2, y2 in points if n2 != n):
            front.add(n)
    return front


def scatter_pareto(points: list[tuple[str, float, float]], xlabel: str, ylabel: str, title: str) -> str:
    """points: (name, latency, quality); the Pareto front (lower latency, higher quality) is joined and ringed."""
    if not points:
        return _svg(f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle" font-size="13">no data: {escape(title)}</text>', title)
    xs, ys = [p[1] for p in points], [p[2] for p in points]
    xlo, xhi = min(xs) * 0.9, max(xs) * 1.1
    ylo, yhi = min(ys), max(ys)
    margin = max((yhi - ylo) * 0.15, 1e-3)
    xt, yt = nice_ticks(xlo, xhi), nice_ticks(ylo - margin, yhi + margin)
    sx, sy = _scale(xt[0], xt[-1], PAD_L, W - PAD_R), _scale(yt[0], yt[-1], H - PAD_B, PAD_T)
    body = [_axes(xlabel, ylabel, _labelled(xt, sx), _labelled(yt, sy))]
    front = pareto_front(points)
    fpts = sorted((p for p in points if p[0] in front), key=lambda p: p[1])
    if len(fpts) > 1:
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for _, x, y in fpts)
        body.append(f'<polyline points="{path}" fill="none" stroke="#d62728" stroke-dasharray="5,3" stroke-width="1.5"/>')
    for i, (n, x, y) in enumerate(points):
        c = PALETTE[i % len(PALETTE)]
        body.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="6" fill="{c}"/>')
        if n in front:
            body.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="10" fill="none" stroke="#d62728" stroke-width="1.5"/>')
        body.append(f'<text x="{sx(x) + 12:.1f}" y="{sy(y) - 8:.1f}" font-size="11">{escape(n)}</text>')
    body.append(f'<text x="{W - PAD_R}" y="{PAD_T + 12}" text-anchor="end" font-size="11" fill="#d62728">ringed + dashed: Pareto front</text>')
    return _svg("".join(body), title)


def bars(groups: list[str], series: dict[str, list[float | None]], ylabel: str, title: str) -> str:
    """Grouped bars: one group per label, one bar per series (None: not measured)."""
    vals = [v for vs in series.values() for v in vs if v is not None]
    if not groups or not vals:
        return _svg(f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle" font-size="13">no data</text>', title)
    series = {name: vs for name, vs in series.items() if any(v is not None for v in vs)}  # nothing drawn: no legend entry
    yt = nice_ticks(0, max(vals) * 1.12)
    sy = _scale(0, yt[-1], H - PAD_B, PAD_T)
    gw = (W - PAD_L - PAD_R) / len(groups)
    bw = gw * 0.8 / max(len(series), 1)
    body = [_axes("", ylabel, [(PAD_L + gw * (i + 0.5), g) for i, g in enumerate(groups)], _labelled(yt, sy))]
    for si, (name, vs) in enumerate(series.items()):
        c = PALETTE[si % len(PALETTE)]
        for gi, v in enumerate(vs):
            if v is None:
                continue
            x = PAD_L + gw * gi + gw * 0.1 + bw * si
            body.append(
                f'<rect x="{x:.1f}" y="{sy(v):.1f}" width="{bw - 2:.1f}" height="{sy(0) - sy(v):.1f}" fill="{c}"><title>{escape(name)} {escape(groups[gi])}: {v:.4g}</title></rect>'
                f'<text x="{x + bw / 2 - 1:.1f}" y="{sy(v) - 3:.1f}" text-anchor="middle" font-size="10">{v:.3g}</text>'
            )
        if len(series) > 1:  # the legend sits in its own row under the axis, never over a bar
            lx = PAD_L + si * 110
            body.append(
                f'<rect x="{lx}" y="{H - 22}" width="10" height="10" fill="{c}"/>'
                f'<text x="{lx + 14}" y="{H - 13}" font-size="11">{escape(name)}</text>'
            )
    return _svg("".join(body), title)
