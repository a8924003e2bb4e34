"""Small shared helpers for the benchmark scripts: plain-text tables, mean +- SE, machine info, SVG plots.

Tables are Markdown pipe tables with padded columns, so the same text reads well in a terminal and
renders in a results `.md` file. Plots are hand-written SVG (no matplotlib dependency).
"""

from __future__ import annotations

import math
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from html import escape
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PALETTE = ["#1f77b4", "#d62728", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (0 SE for fewer than two values)."""
    arr = np.asarray(values, dtype=float)
    if len(arr) < 2:
        return float(arr.mean()) if len(arr) else math.nan, 0.0
    return float(arr.mean()), float(arr.std(ddof=1) / math.sqrt(len(arr)))


def fmt_mean_se(values: Sequence[float], digits: int = 3) -> str:
    m, se = mean_se(values)
    return f"{m:.{digits}f} ± {se:.{digits}f}"


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]], note: str = "") -> str:
    """A titled Markdown pipe table; the first column is left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        parts = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        return "| " + " | ".join(parts) + " |"

    rule = "|" + "|".join([":" + "-" * (widths[0] + 1)] + ["-" * (w + 1) + ":" for w in widths[1:]]) + "|"
    out = [f"### {title}", "", line(cells[0]), rule, *(line(r) for r in cells[1:])]
    if note:
        out += ["", note]
    return "\n".join(out) + "\n"


def code_version() -> str:
    """The project code measured: a snapshot's `.snapshot_of` note, else git HEAD (+ uncommitted paths)."""
    note = REPO / ".snapshot_of"
    if note.exists():
        return note.read_text().strip()
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "log", "-1", "--format=%h %s"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            [
                "git",
                "-C",
                str(REPO),
                "status",
                "--porcelain",
                "--",
                "workflows",
                "activities",
                "mipro",
                "worker.py",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    changed = [p for p in dirty if "/" in p or p.endswith(".py")]
    return f"git {head[:90]}" + (f" (uncommitted changes in {', '.join(changed)})" if changed else "")


def machine_info() -> dict[str, str]:
    """nproc, CPU model, OS and Python version, for results files."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        nproc = str(os.cpu_count())
    return {
        "nproc": nproc,
        "cpu": cpu or "unknown",
        "os": platform.platform(),
        "python": sys.version.split()[0],
    }


def _nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / target
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks, t = [], first
    while t <= hi + 1e-9 * step:
        ticks.append(round(t, 10))
        t += step
    return ticks


def svg_line_panels(
    path: str,
    panels: Sequence[dict],
    title: str = "",
    panel_w: int = 460,
    panel_h: int = 320,
) -> None:
    """Write side-by-side line-chart panels to an SVG file.

    Each panel is {"title": str, "xlabel": str, "ylabel": str, "series": {name: (xs, ys[, band])}} where
    band (optional) is a half-width drawn as a translucent area (e.g. one standard error). Series names
    share colours across panels and one legend is drawn under the panels.
    """
    names: list[str] = []
    for p in panels:
        names += [n for n in p["series"] if n not in names]
    color = {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}
    ml, mr, mt, mb = 62, 16, 34, 46
    top = 30 if title else 6
    per_row = min(4, len(names))
    legend_h = 22 * math.ceil(len(names) / per_row) + 10
    width = panel_w * len(panels)
    height = top + panel_h + legend_h
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Helvetica,Arial,sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    if title:
        out.append(f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="15">{escape(title)}</text>')
    for i, p in enumerate(panels):
        x0, y0 = i * panel_w + ml, top + mt
        w, h = panel_w - ml - mr, panel_h - mt - mb
        series = p["series"]
        xs_all = np.concatenate([np.asarray(s[0], float) for s in series.values()])
        lo_y = [
            np.asarray(s[1], float) - (np.asarray(s[2], float) if len(s) > 2 else 0) for s in series.values()
        ]
        hi_y = [
            np.asarray(s[1], float) + (np.asarray(s[2], float) if len(s) > 2 else 0) for s in series.values()
        ]
        xmin, xmax = float(xs_all.min()), float(xs_all.max())
        ymin = min(0.0, float(min(a.min() for a in lo_y)))
        ymax = float(max(a.max() for a in hi_y)) * 1.05
        yt = _nice_ticks(ymin, ymax)
        ymax = max(ymax, yt[-1])
        xt = _nice_ticks(xmin, xmax)

        def sx(x: float, x0=x0, w=w, xmin=xmin, xmax=xmax) -> float:
            return x0 + (x - xmin) / ((xmax - xmin) or 1.0) * w

        def sy(y: float, y0=y0, h=h, ymin=ymin, ymax=ymax) -> float:
            return y0 + h - (y - ymin) / ((ymax - ymin) or 1.0) * h

        out.append(
            f'<text x="{x0 + w / 2}" y="{top + 18}" text-anchor="middle" font-size="13">'
            f"{escape(p.get('title', ''))}</text>"
        )
        for t in yt:
            if ymin <= t <= ymax:
                out.append(
                    f'<line x1="{x0}" x2="{x0 + w}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" stroke="#e5e5e5"/>'
                )
                out.append(f'<text x="{x0 - 6}" y="{sy(t) + 4:.1f}" text-anchor="end">{t:g}</text>')
        for t in xt:
            if xmin <= t <= xmax:
                out.append(
                    f'<line x1="{sx(t):.1f}" x2="{sx(t):.1f}" y1="{y0 + h}" y2="{y0 + h + 4}" stroke="#333"/>'
                )
                out.append(f'<text x="{sx(t):.1f}" y="{y0 + h + 17}" text-anchor="middle">{t:g}</text>')
        out.append(f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#333"/>')
        xlabel = escape(p.get("xlabel", ""))
        out.append(f'<text x="{x0 + w / 2}" y="{y0 + h + 36}" text-anchor="middle">{xlabel}</text>')
        cy = y0 + h / 2
        out.append(
            f'<text x="{x0 - 46}" y="{cy}" text-anchor="middle" transform="rotate(-90 {x0 - 46} {cy})">'
            f"{escape(p.get('ylabel', ''))}</text>"
        )
        for name, s in series.items():
            xs, ys = np.asarray(s[0], float), np.asarray(s[1], float)
            if len(s) > 2:
                band = np.asarray(s[2], float)
                pts = [(sx(x), sy(y + b)) for x, y, b in zip(xs, ys, band, strict=True)]
                pts += [(sx(x), sy(y - b)) for x, y, b in zip(xs[::-1], ys[::-1], band[::-1], strict=True)]
                poly = " ".join(f"{a:.1f},{b:.1f}" for a, b in pts)
                out.append(
                    f'<polygon points="{poly}" fill="{color[name]}" fill-opacity="0.12" stroke="none"/>'
                )
            line = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(xs, ys, strict=True))
            out.append(f'<polyline points="{line}" fill="none" stroke="{color[name]}" stroke-width="1.8"/>')
    col_w = width / per_row
    for j, name in enumerate(names):
        lx = 20 + (j % per_row) * col_w
        ly = top + panel_h + 14 + 22 * (j // per_row)
        out.append(
            f'<line x1="{lx}" x2="{lx + 24}" y1="{ly}" y2="{ly}" stroke="{color[name]}" stroke-width="3"/>'
        )
        out.append(f'<text x="{lx + 30}" y="{ly + 4}">{escape(name)}</text>')
    out.append("</svg>")
    with open(path, "w") as fh:
        fh.write("\n".join(out) + "\n")
