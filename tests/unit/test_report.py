"""The HTML report: self-contained, escaped, four charts, renders to a non-blank page in headless Chromium."""

from __future__ import annotations

import re
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from mipro.budget import Spend
from mipro.job_models import (
    BestPrompt,
    CandidateSummary,
    OptimizationResult,
    TrialRecord,
    ValidationRecord,
)
from mipro.report import render_report
from mipro.types import CandidateChoice, ChatMessage, Usage

REPO = Path(__file__).resolve().parents[2]
EVIL = "<script>alert(1)</script>"
INSTRUCTIONS = [
    "Classify the customer query into one of the 77 banking intents.",
    f"Ignore previous text {EVIL} and answer with the intent label only.",
    "You are a meticulous bank support agent. " * 12,
    "Pick the single best intent; think about card, transfer and top-up topics.",
]


def make_result(
    stages: int = 1,
    trials: int = 20,
    validations: int = 3,
    simulated: bool = True,
    data_source: str | None = None,
) -> OptimizationResult:
    records = [
        TrialRecord(
            trial=t,
            iteration=t // 4,
            choice=CandidateChoice(
                instruction=[(t + s) % 4 for s in range(stages)],
                demo_set=[(t * 3 + s) % 5 for s in range(stages)],
            ),
            candidate_hash=f"h{t}",
            seeds=list(range(8)),
            minibatch_score=None if t == 7 else 0.4 + 0.025 * t + 0.05 * (t % 3),
            paired_lift=None if t == 7 else 0.01 * (t - 5),
            n=8,
            errors=1 if t == 7 else 0,
            elapsed_seconds=5.0 + 4.0 * t,
            spend_usd=0.002 * (t + 1),
        )
        for t in range(trials)
    ]
    vals = [
        ValidationRecord(
            after_trials=5 * (v + 1),
            key=records[5 * v + 4].choice.key,
            score=0.6 + 0.08 * v - (0.1 if v == 1 else 0.0),
            incumbent=v != 1,
            elapsed_seconds=4.0 * (5 * v + 5) + 6.0,
            spend_usd=0.002 * (5 * v + 5) + 0.001,
        )
        for v in range(min(validations, trials // 5))
    ]
    seen: dict[str, CandidateSummary] = {}
    for r in records:
        seen.setdefault(
            r.choice.key,
            CandidateSummary(
                key=r.choice.key,
                choice=r.choice,
                candidate_hash=r.candidate_hash,
                demo_counts=[d + 1 for d in r.choice.demo_set],
                minibatch_score=r.minibatch_score,
                minibatch_n=r.n,
                paired_lift=r.paired_lift,
                validation_score=next((v.score for v in vals if v.key == r.choice.key), None),
            ),
        )
    best_choice = (
        records[-1].choice if records else CandidateChoice(instruction=[0] * stages, demo_set=[0] * stages)
    )
    best = BestPrompt(
        choice=best_choice,
        instructions=[INSTRUCTIONS[i] for i in best_choice.instruction],
        messages=[
            ChatMessage(role="system", content=INSTRUCTIONS[best_choice.instruction[0]]),
            ChatMessage(role="user", content="I lost my card " + EVIL),
            ChatMessage(
                role="assistant",
                tool_calls=[
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "classify", "arguments": '{"intent": "lost_or_stolen_card"}'},
                    }
                ],
            ),
            ChatMessage(role="user", content="Long context line\n" * 40),
        ],
    )
    return OptimizationResult(
        job_id="job-<b>42</b>",
        status="succeeded" if trials else "cancelled",
        stop_reason="max_trials_allowed" if trials else "cancelled",
        best=best,
        baseline_test_score=0.55 if trials else None,
        best_test_score=0.71 if trials else None,
        lift=0.16 if trials else None,
        baseline_validation_score=0.58 if trials else None,
        best_validation_score=max((v.score for v in vals), default=None),
        total_trials=trials,
        total_rollouts=8 * trials,
        rollout_errors=trials // 10,
        errors_by_kind={"timeout": 1, "http_5xx": 1} if trials else {},
        attempted_candidates=list(seen.values()),
        instructions=[list(INSTRUCTIONS) for _ in range(stages)],
        trials=records,
        validations=vals,
        costs=Spend(
            rollout=Usage(calls=160, prompt_tokens=120_000, completion_tokens=4_000, cost_usd=0.031),
            proposal=Usage(calls=12, prompt_tokens=30_000, completion_tokens=6_000, cost_usd=0.012),
        ),
        elapsed_seconds=4.0 * trials + 20.0,
        simulated_llm=simulated,
        task_app_data_source=data_source,
    )


def assert_self_contained(page: str) -> None:
    for attr in re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]*)""", page, flags=re.I):
        assert not attr.lower().startswith(("http:", "https:", "//")), attr
    assert not re.search(r"<script\b", page, flags=re.I)
    assert "http://" not in page and "https://" not in page
    assert "<link" not in page.lower() and "@import" not in page and "url(" not in page


@pytest.mark.parametrize("stages", [1, 2])
def test_report_full(stages: int) -> None:
    page = render_report(make_result(stages=stages))
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert_self_contained(page)
    assert EVIL not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "job-&lt;b&gt;42&lt;/b&gt;" in page
    assert "SIMULATED LLM" in page
    assert page.count("<svg") == 4 and page.count("</svg>") == 4
    assert "no data" not in page
    assert "classify({&quot;intent&quot;: &quot;lost_or_stolen_card&quot;})" in page
    assert "<details>" in page  # the long user message is collapsed
    assert "stage 1" in page if stages == 2 else "stage 1" not in page
    assert "max_trials_allowed" in page and "timeout: 1" in page


def test_report_not_simulated() -> None:
    page = render_report(make_result(simulated=False))
    assert "SIMULATED LLM" not in page
    assert page.count("<svg") == 4


def top_of(page: str) -> str:
    """The page above its summary table: the title, the banners and the provenance line."""
    return page[: page.index("<h2>Summary</h2>")]


def test_report_names_the_data_and_the_llm_near_the_top() -> None:
    page = render_report(make_result(data_source="dir:/data/shared/datasets/banking77"))
    assert_self_contained(page)
    top = top_of(page)
    assert "task app data <code>dir:/data/shared/datasets/banking77</code>" in top
    assert "LLM <b>simulated</b>" in top and "SIMULATED LLM" in top and "FALLBACK DATA" not in page
    real = top_of(render_report(make_result(simulated=False, data_source="dir:/d")))
    assert "LLM <b>not simulated</b>" in real and "SIMULATED LLM" not in real


def test_report_flags_the_fallback_set() -> None:
    source = "fallback: small built-in intent set (12 intents), NOT Banking77 (fallback_intents.json)"
    top = top_of(render_report(make_result(simulated=False, data_source=source)))
    assert "FALLBACK DATA" in top and f"<code>{source}</code>" in top


def test_report_escapes_the_data_source_and_says_when_it_is_unknown() -> None:
    page = render_report(make_result(data_source=f"dir:/tmp/{EVIL}"))
    assert EVIL not in page and "<code>dir:/tmp/&lt;script&gt;alert(1)&lt;/script&gt;</code>" in page
    unknown = top_of(render_report(make_result()))
    assert "task app data" in unknown and "unknown (the task app did not say" in unknown
    download = render_report(make_result(data_source="download:https://example.org/banking_data"))
    assert "<code>download:https://example.org/banking_data</code>" in download  # text, never a link
    assert "<a " not in download and 'src="http' not in download


def test_report_zero_trials() -> None:
    page = render_report(make_result(trials=0, validations=0, simulated=False))
    assert_self_contained(page)
    assert page.count("<svg") == 4 and page.count("no data") == 4
    assert "cancelled" in page


# --- rendering in headless Chromium ---------------------------------------------------------------------


def find_chromium() -> str:
    script = REPO / "scripts" / "ensure_chromium.sh"
    proc = subprocess.run([str(script)], capture_output=True, text=True, timeout=900)
    path = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    if proc.returncode != 0 or not path:
        pytest.fail(
            f"headless Chromium is required for this render test; {script} could not provide one "
            f"(exit {proc.returncode}):\n{proc.stderr[-2000:]}"
        )
    return path


def png_pixels(data: bytes) -> tuple[int, int, int, list[bytes]]:
    """Width, height, bytes per pixel and unfiltered rows of an 8-bit RGB/RGBA non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos : pos + 4]), data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        header, idat = (body, idat) if kind == b"IHDR" else (header, idat + body if kind == b"IDAT" else idat)
        pos += 12 + length
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
    bpp = 3 if color == 2 else 4
    raw, stride, rows, prev = zlib.decompress(idat), width * bpp, [], bytes(width * bpp)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a, b = line[i - bpp] if i >= bpp else 0, prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        prev = bytes(line)
        rows.append(prev)
    return width, height, bpp, rows


def test_report_renders_in_chromium(tmp_path: Path) -> None:
    chromium = find_chromium()
    page = tmp_path / "report.html"
    page.write_text(render_report(make_result(stages=2)), encoding="utf-8")
    png = tmp_path / "shot.png"
    profile = tmp_path / "profile"  # a fresh Chromium profile
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1200,1600",
        f"--screenshot={png}",
    ]
    proc = subprocess.run([chromium, *flags, page.as_uri()], capture_output=True, text=True, timeout=120)
    assert png.exists(), f"chromium wrote no screenshot (rc={proc.returncode}):\n{proc.stderr[-2000:]}"
    assert png.stat().st_size > 20_000, f"suspiciously small screenshot: {png.stat().st_size} bytes"
    width, height, bpp, rows = png_pixels(png.read_bytes())
    assert (width, height) == (1200, 1600) or (width >= 800 and height >= 800), (width, height)
    pixels = b"".join(rows)
    non_white = sum(1 for v in pixels if v < 235) / len(pixels)
    assert non_white > 0.01, f"screenshot looks blank: {non_white:.4f} of bytes are non-white"
    assert len(set(pixels)) > 64, "screenshot has too few distinct values to contain text and charts"
    colored = sum(1 for r in rows for i in range(0, len(r), bpp) if abs(r[i] - r[i + 2]) > 60)
    assert colored > 500, "no colored chart marks found"


def test_report_and_result_show_the_judges_spend_when_there_is_one() -> None:
    from mipro.starter import render
    from mipro.types import Usage

    result = make_result()
    assert ">judge<" not in render_report(result)
    result.costs.add("judge", Usage(calls=3, prompt_tokens=300, completion_tokens=6, cost_usd=0.0123))
    assert ">judge<" in render_report(result)
    with render.console.capture() as shown:
        render.print_result(result, "http://ui")
    assert "judge tokens / cost" in shown.get() and "$0.0123" in shown.get()
