"""A self-contained HTML report of a finished (or cancelled) optimization job.

`render_report(result)` returns one HTML page: inline CSS, inline SVG charts drawn here, no scripts and
no external resources. Every text that comes from the job (instructions, messages, keys) is HTML-escaped.
"""

from __future__ import annotations

import html
import json
import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mipro.job_models import CandidateSummary, OptimizationResult, TrialRecord
from mipro.types import ChatMessage, Usage

W, H = 520, 300
LEFT, RIGHT, TOP, BOTTOM = 66, 18, 40, 52
COLORS = ["#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2"]
CSP = (
    """<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">"""
)
Point = tuple[float, float]
Mark = tuple[float, float, str]  # x, y, tooltip
Marker = Callable[[float, float], str]

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:16px;color:#1f2937;
 max-width:1280px}
h1{font-size:22px;margin:0 0 6px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #e5e7eb}
h3{font-size:15px;margin:4px 0}.muted{color:#6b7280}
.sim{background:#fef3c7;border:2px solid #d97706;color:#92400e;font-weight:700;padding:10px 14px;
 margin:10px 0;font-size:18px;letter-spacing:.04em}
.prov{margin:4px 0;font-size:14px}.prov code{background:#f3f4f6;padding:1px 4px;word-break:break-all}
.badge{display:inline-block;padding:2px 8px;border-radius:10px;background:#e5e7eb;font-weight:600}
.succeeded{background:#dcfce7;color:#166534}.cancelled,.terminated{background:#fef9c3;color:#854d0e}
.failed{background:#fee2e2;color:#991b1b}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{border:1px solid #e5e7eb;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f9fafb}td.num{text-align:right;font-variant-numeric:tabular-nums}tr.best{background:#eff6ff}
.charts{display:flex;flex-wrap:wrap;gap:16px}.chart{border:1px solid #e5e7eb;padding:8px;border-radius:6px}
svg text{font-size:11px;fill:#374151}svg .lbl{font-size:12px;fill:#111827;text-anchor:middle}
svg .nodata{font-size:20px;fill:#9ca3af}
pre{white-space:pre-wrap;word-break:break-word;background:#f9fafb;padding:8px;margin:4px 0;font-size:12px}
.msg{margin:8px 0}summary{font-size:12px;color:#4b5563;cursor:pointer}
.role{font-weight:700;text-transform:uppercase;font-size:12px;color:#4b5563}
ul.instr{font-size:13px;margin:4px 0 8px;padding-left:8px;list-style:none}ul.instr li{margin:2px 0}
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def truncate(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def nice_ticks(lo: float, hi: float, count: int = 5, integer: bool = False) -> list[float]:
    """Round tick values covering [lo, hi]."""
    if hi - lo < 1e-12:
        lo, hi = (lo, lo + 1) if integer or lo == 0 else (lo - 0.5, hi + 0.5)
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    mults = (1, 2, 5, 10) if integer else (1, 2, 2.5, 5, 10)
    step = next(m * mag for m in mults if m * mag >= raw * 0.999)
    step = max(step, 1.0) if integer else step
    start = math.floor(lo / step + 1e-9) * step
    n = math.ceil((hi - start) / step - 1e-9)
    return [start + i * step for i in range(n + 1)]


@dataclass
class Frame:
    """Data-to-pixel mapping of a chart plus its axes."""

    x0: float
    x1: float
    y0: float
    y1: float
    xticks: list[tuple[float, str]]
    yticks: list[tuple[float, str]]

    def px(self, x: float) -> float:
        return LEFT + (x - self.x0) / (self.x1 - self.x0) * (W - LEFT - RIGHT)

    def py(self, y: float) -> float:
        return H - BOTTOM - (y - self.y0) / (self.y1 - self.y0) * (H - TOP - BOTTOM)

    def axes(self, xlabel: str, ylabel: str) -> str:
        bottom, mid, parts = H - BOTTOM, (TOP + H - BOTTOM) / 2, []
        for y, label in self.yticks:
            py = self.py(y)
            parts.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{py:.1f}" y2="{py:.1f}" stroke="#eef0f3"/>')
            parts.append(f'<text x="{LEFT - 6}" y="{py + 4:.1f}" text-anchor="end">{esc(label)}</text>')
        for x, label in self.xticks:
            px = self.px(x)
            parts.append(f'<path d="M{px:.1f},{bottom}v5" stroke="#6b7280"/>')
            parts.append(f'<text x="{px:.1f}" y="{bottom + 18}" text-anchor="middle">{esc(label)}</text>')
        return "".join(parts) + (
            f'<path d="M{LEFT},{TOP - 6}V{bottom}H{W - RIGHT}" fill="none" stroke="#6b7280"/>'
            f'<text class="lbl" x="{(LEFT + W - RIGHT) / 2}" y="{H - 10}">{esc(xlabel)}</text>'
            f'<text class="lbl" transform="translate(16,{mid}) rotate(-90)">{esc(ylabel)}</text>'
        )


def value_ticks(values: list[float], unit: bool = False, integer: bool = False) -> list[float]:
    """Ticks for data values; [0, 1] in steps of 0.2 when `unit` and all values lie within it."""
    if unit and all(0.0 <= v <= 1.0 for v in values):
        return [i / 5 for i in range(6)]
    return nice_ticks(min(values), max(values), integer=integer)


def labelled(ticks: list[float]) -> list[tuple[float, str]]:
    return [(t, f"{round(t, 9) + 0.0:g}") for t in ticks]


def numeric_frame(xs: list[float], ys: list[float], integer_x: bool = False, unit_y: bool = False) -> Frame:
    xt = value_ticks(xs, integer=integer_x)
    yt = value_ticks(ys, unit=unit_y)
    return Frame(xt[0], xt[-1], yt[0], yt[-1], labelled(xt), labelled(yt))


def svg(body: str, label: str) -> str:
    size = f'viewBox="0 0 {W} {H}" width="{W}" height="{H}"'
    return f'<svg {size} role="img" aria-label="{esc(label)}">{body}</svg>'


def no_data(label: str) -> str:
    box = f'<rect x="{LEFT}" y="{TOP}" width="{W - LEFT - RIGHT}" height="{H - TOP - BOTTOM}" fill="#f9fafb"'
    text = f'<text class="nodata" x="{W / 2}" y="{H / 2}" text-anchor="middle">no data</text>'
    return svg(f'{box} stroke="#e5e7eb"/>{text}', label)


SHAPES = {
    "circle": '<circle cx="{x:.1f}" cy="{y:.1f}" r="{s}" fill="{c}" fill-opacity="0.75"/>',
    "diamond": '<path d="M{x:.1f},{t:.1f}L{r:.1f},{y:.1f}L{x:.1f},{b:.1f}L{l:.1f},{y:.1f}Z" fill="{c}"/>',
    "square": '<rect x="{l:.1f}" y="{t:.1f}" width="{w}" height="{w}" fill="{c}"/>',
    "line": '<line x1="{l:.1f}" x2="{r:.1f}" y1="{y}" y2="{y}" stroke="{c}" stroke-width="2"/>',
}


def marker(shape: str, color: str, size: float = 3.5) -> Marker:
    """A function drawing `shape` centred on a pixel position."""
    return lambda x, y: SHAPES[shape].format(
        x=x, y=y, s=size, c=color, t=y - size, b=y + size, l=x - size, r=x + size, w=2 * size
    )


DOT, DIAMOND, STEP = (
    marker("circle", COLORS[0]),
    marker("diamond", COLORS[1], 6),
    marker("line", COLORS[2], 8),
)


def legend(entries: list[tuple[Marker, str]]) -> str:
    parts, x = [], LEFT + 10.0
    for marker, label in entries:
        parts.append(marker(x, 16) + f'<text x="{x + 12:.1f}" y="20">{esc(label)}</text>')
        x += 30 + 6.5 * len(label)
    return "".join(parts)


def polyline(frame: Frame, points: list[Point], color: str, step: bool = False) -> str:
    if not points:
        return ""
    coords: list[Point] = []
    for x, y in points:
        if step and coords:
            coords.append((frame.px(x), coords[-1][1]))
        coords.append((frame.px(x), frame.py(y)))
    d = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    return f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="2"/>'


def marks(frame: Frame, points: list[Mark], marker: Marker) -> str:
    return "".join(f"<g>{marker(frame.px(x), frame.py(y))}<title>{esc(t)}</title></g>" for x, y, t in points)


def best_so_far(result: OptimizationResult) -> list[Point]:
    """Step points of the best validation score, from the baseline at trial 0 to the last trial."""
    best = result.baseline_validation_score
    points: list[Point] = [] if best is None else [(0.0, best)]
    for v in sorted(result.validations, key=lambda v: v.after_trials):
        if v.incumbent or best is None:
            best = v.score
            points.append((float(v.after_trials), best))
    end = max([t.trial for t in result.trials] + [x for x, _ in points], default=0)
    return points + [(float(end), best)] if best is not None else []


def score_chart(result: OptimizationResult) -> str:
    scored = [(t.trial, t.minibatch_score) for t in result.trials if t.minibatch_score is not None]
    trials = [(float(x), y, f"trial {x}: {y:.3f}") for x, y in scored]
    vals = [
        (float(v.after_trials), v.score, f"validation {v.key}: {v.score:.3f}") for v in result.validations
    ]
    if not trials and not vals:
        return no_data("score per trial")
    steps = best_so_far(result)
    ys = [y for _, y, _ in trials + vals] + [y for _, y in steps]
    frame = numeric_frame([0.0] + [x for x, _, _ in trials + vals], ys, integer_x=True, unit_y=True)
    body = frame.axes("trial # (validations at trials done)", "score")
    body += (
        polyline(frame, steps, COLORS[2], step=True) + marks(frame, trials, DOT) + marks(frame, vals, DIAMOND)
    )
    entries = [(DOT, "minibatch score"), (DIAMOND, "validation"), (STEP, "best validation so far")]
    return svg(body + legend(entries), "score per trial")


def spend_chart(result: OptimizationResult) -> str:
    trials = [(t.elapsed_seconds, t.spend_usd, f"trial {t.trial}: ${t.spend_usd:.4f}") for t in result.trials]
    vals = [
        (v.elapsed_seconds, v.spend_usd, f"validation {v.key}: ${v.spend_usd:.4f}")
        for v in result.validations
    ]
    if not trials and not vals:
        return no_data("cumulative spend")
    line = [(0.0, 0.0)] + sorted((x, y) for x, y, _ in trials + vals)
    if result.elapsed_seconds >= line[-1][0]:  # the job's end
        line.append((result.elapsed_seconds, max(result.costs.total.cost_usd, line[-1][1])))
    scale, unit = (60.0, "min") if line[-1][0] > 600 else (1.0, "s")
    line, trials, vals = [(x / scale, y) for x, y in line], scaled(trials, scale), scaled(vals, scale)
    frame = numeric_frame([x for x, _ in line], [y for _, y in line])
    body = frame.axes(f"elapsed ({unit})", "cumulative spend (USD)") + polyline(frame, line, COLORS[0])
    body += marks(frame, trials, DOT) + marks(frame, vals, DIAMOND)
    return svg(body + legend([(DOT, "trial"), (DIAMOND, "validation")]), "cumulative spend")


def scaled(points: list[Mark], scale: float) -> list[Mark]:
    return [(x / scale, y, tip) for x, y, tip in points]


def scores_by_index(trials: list[TrialRecord], field: str) -> list[dict[int, list[float]]]:
    """Per stage: index (instruction or demo set) -> minibatch scores of the trials that used it."""
    stages = max((len(getattr(t.choice, field)) for t in trials), default=0)
    out: list[dict[int, list[float]]] = [defaultdict(list) for _ in range(stages)]
    for t in trials:
        for stage, index in enumerate(getattr(t.choice, field)):
            if t.minibatch_score is not None:
                out[stage][index].append(t.minibatch_score)
    return out


def bar_chart(groups: list[dict[int, list[float]]], label: str, what: str) -> str:
    """Grouped bars: mean score per index, one bar per stage."""
    cats = sorted({i for g in groups for i in g})
    if not cats:
        return no_data(label)
    means = [m for g in groups for v in g.values() if (m := mean(v)) is not None]
    yt = value_ticks(means + [0.0], unit=True)
    every = math.ceil(len(cats) / 16)  # thin the labels of crowded axes
    xt = [(float(i), f"#{c}" if i % every == 0 else "") for i, c in enumerate(cats)]
    frame = Frame(-0.5, len(cats) - 0.5, yt[0], yt[-1], xt, labelled(yt))
    band = (W - LEFT - RIGHT) / len(cats)
    width, base = band * 0.8 / len(groups), frame.py(min(max(0.0, yt[0]), yt[-1]))
    body = frame.axes(f"{what} index", "mean minibatch score")
    for s, g in enumerate(groups):
        for i, c in enumerate(cats):
            if (m := mean(g.get(c, []))) is None:
                continue
            x, top = frame.px(i) - band * 0.4 + s * width, frame.py(m)
            tip = f"stage {s}, {what} #{c}: mean {m:.3f} over {len(g[c])} trials"
            body += f'<rect x="{x:.1f}" y="{min(top, base):.1f}" width="{width - 1:.1f}" '
            body += f'height="{abs(base - top):.1f}" fill="{COLORS[s % len(COLORS)]}">'
            body += f"<title>{esc(tip)}</title></rect>"
            if width >= 16:
                body += f'<text x="{x + width / 2:.1f}" y="{min(top, base) - 3:.1f}" text-anchor="middle">'
                body += f"n={len(g[c])}</text>"
    entries = [(marker("square", COLORS[s % len(COLORS)], 5), f"stage {s}") for s in range(len(groups))]
    return svg(body + legend(entries), label)


def instruction_texts(result: OptimizationResult) -> dict[tuple[int, int], str]:
    """(stage, instruction index) -> text, for every instruction of every stage."""
    return {(s, i): text for s, texts in enumerate(result.instructions) for i, text in enumerate(texts)}


def instruction_list(result: OptimizationResult, groups: list[dict[int, list[float]]]) -> str:
    texts, parts = instruction_texts(result), []
    stages = sorted({s for s, _ in texts} | set(range(len(groups))))
    for s in stages:
        seen = groups[s] if s < len(groups) else {}
        items = []
        for i in sorted({i for st, i in texts if st == s} | set(seen)):
            stats = f"mean {fmt(mean(seen.get(i, [])))}, n={len(seen.get(i, []))}"
            text = esc(truncate(texts.get((s, i), "(text not recorded)")))
            items.append(f"<li><b>#{i}</b> <span class=muted>({stats})</span> {text}</li>")
        parts.append(f"<h3>Stage {s} instructions</h3><ul class=instr>{''.join(items)}</ul>")
    return "".join(parts)


def header_row(cols: list[str]) -> str:
    return "<tr>" + "".join(f"<th>{esc(c)}</th>" for c in cols) + "</tr>"


def usage_row(name: str, usage: Usage) -> str:
    cells = [usage.calls, usage.prompt_tokens, usage.completion_tokens, usage.total_tokens]
    nums = "".join(f"<td class=num>{v:,}</td>" for v in cells)
    return f"<tr><th>{esc(name)}</th>{nums}<td class=num>${usage.cost_usd:.4f}</td></tr>"


def duration(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h {m:02d}m {s:02d}s" if h else f"{m}m {s:02d}s"


def summary(r: OptimizationResult) -> str:
    errors = ", ".join(f"{esc(k)}: {v}" for k, v in sorted(r.errors_by_kind.items())) or "none"
    rows = [
        ("Test score: baseline → best", f"{fmt(r.baseline_test_score)} → {fmt(r.best_test_score)}"),
        ("Lift (test)", "—" if r.lift is None else f"{r.lift:+.3f}"),
        (
            "Validation: baseline → best",
            f"{fmt(r.baseline_validation_score)} → {fmt(r.best_validation_score)}",
        ),
        ("Trials", str(r.total_trials)),
        ("Rollouts", f"{r.total_rollouts:,} ({r.rollout_errors:,} failed)"),
        ("Errors by kind", errors),
        ("Elapsed", duration(r.elapsed_seconds)),
    ]
    table = "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in rows)
    cols = ["category", "calls", "prompt tokens", "completion tokens", "total tokens", "USD"]
    spend = header_row(cols) + usage_row("rollout (policy)", r.costs.rollout)
    spend += usage_row("proposal (meta-model)", r.costs.proposal)
    if r.costs.judge.calls:
        spend += usage_row("judge", r.costs.judge)
    spend += usage_row("total", r.costs.total)
    return f"<h2>Summary</h2><table>{table}</table><h3>Tokens and spend</h3><table>{spend}</table>"


def tool_call_text(call: dict[str, Any]) -> str:
    fn = call.get("function") or call
    args = fn.get("arguments", "")
    return f"{fn.get('name', '?')}({args if isinstance(args, str) else json.dumps(args)})"


def message_html(message: ChatMessage) -> str:
    text = message.content or ""
    if message.tool_calls:
        text += ("\n" if text else "") + "\n".join(tool_call_text(c) for c in message.tool_calls)
    body = f"<pre>{esc(text)}</pre>"
    if len(text) > 600 or text.count("\n") > 12:
        body = f"<details><summary>{esc(truncate(text, 100))} ({len(text):,} chars)</summary>{body}</details>"
    return f'<div class="msg"><span class="role">{esc(message.role)}</span>{body}</div>'


def candidate_row(c: CandidateSummary, best_key: str, texts: dict[tuple[int, int], str]) -> str:
    instr = "<br>".join(
        f"[{s}:{i}] {esc(truncate(texts.get((s, i), ''), 120))}" for s, i in enumerate(c.choice.instruction)
    )
    demos = ", ".join(str(d) for d in c.demo_counts)
    lift = "—" if c.paired_lift is None else f"{c.paired_lift:+.3f}"
    nums = [fmt(c.minibatch_score), str(c.minibatch_n), lift, fmt(c.validation_score)]
    cells = "".join(f"<td class=num>{v}</td>" for v in nums)
    cls = ' class="best"' if c.key == best_key else ""
    return f"<tr{cls}><td><code>{esc(c.key)}</code></td><td>{instr}</td><td>{demos}</td>{cells}</tr>"


def candidates_table(result: OptimizationResult) -> str:
    title = f"<h2>Attempted candidates ({len(result.attempted_candidates)})</h2>"
    if not result.attempted_candidates:
        return title + "<p class=muted>none</p>"
    head = header_row(["key", "instructions", "demos", "minibatch", "n", "paired lift", "validation"])
    texts = instruction_texts(result)
    rows = "".join(candidate_row(c, result.best.choice.key, texts) for c in result.attempted_candidates)
    return f"{title}<table>{head}{rows}</table>"


def chart(title: str, body: str) -> str:
    return f'<div class="chart"><h3>{esc(title)}</h3>{body}</div>'


def is_fallback_data(source: str | None) -> bool:
    """The example task apps name their small built-in set `fallback: ...` (not the real dataset)."""
    return bool(source) and str(source).startswith("fallback")


def provenance(result: OptimizationResult) -> str:
    """What the scores come from: the LLM (simulated or not) and the data the task app said it served."""
    llm = "<b>simulated</b> (mipro.simllm)" if result.simulated_llm else "<b>not simulated</b>"
    source = result.task_app_data_source
    data = (
        f"<code>{esc(source)}</code>"
        if source
        else '<span class="muted">unknown (the task app did not say which data it serves)</span>'
    )
    return f'<p class="prov">LLM {llm} · task app data {data}</p>'


def header(result: OptimizationResult) -> str:
    sim = "SIMULATED LLM — scores come from a simulated model, not a real LLM"
    banners = [f'<div class="sim">{sim}</div>'] if result.simulated_llm else []
    if is_fallback_data(result.task_app_data_source):
        banners.append(
            '<div class="sim">FALLBACK DATA — the task app served its small built-in set, not the real '
            "dataset: scores say nothing about the real task</div>"
        )
    status = f'<span class="badge {esc(result.status)}">{esc(result.status)}</span>'
    stop = f"stop reason <b>{esc(result.stop_reason or '—')}</b>"
    return (
        f"<h1>MIPROv2 report — {esc(result.job_id)}</h1>{''.join(banners)}{provenance(result)}"
        f"<p>status {status} · {stop}</p>"
    )


def render_report(result: OptimizationResult) -> str:
    """The whole report as one self-contained HTML page."""
    instr, demos = scores_by_index(result.trials, "instruction"), scores_by_index(result.trials, "demo_set")
    charts = "".join([
        chart("Scores per trial", score_chart(result)),
        chart("Cumulative spend", spend_chart(result)),
        chart("Mean minibatch score per instruction", bar_chart(instr, "per instruction", "instruction")),
        chart("Mean minibatch score per demo set", bar_chart(demos, "per demo set", "demo set")),
    ])  # fmt: skip
    best = "".join(message_html(m) for m in result.best.messages) or "<p class=muted>no messages</p>"
    best_head = f"<h2>Best prompt <code>{esc(result.best.choice.key)}</code></h2>"
    head = (
        f'<meta charset="utf-8">{CSP}<title>MIPROv2 report {esc(result.job_id)}</title><style>{CSS}</style>'
    )
    body = f'{header(result)}{summary(result)}<h2>Charts</h2><div class="charts">{charts}</div>'
    body += f"<h2>Instructions</h2>{instruction_list(result, instr)}"
    body += f"{best_head}{best}{candidates_table(result)}"
    return f'<!DOCTYPE html><html lang="en"><head>{head}</head><body>{body}</body></html>\n'
