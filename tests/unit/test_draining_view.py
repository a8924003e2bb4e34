"""`draining_view`: a draining iteration's batch as the next one sees it. Its trials' scores so far are
merged into the job's (its baseline's on the block too); a trial with every seed scored is finished (no
longer busy), one with some is seen on those, one with none is not in the TPE's history."""

from __future__ import annotations

import asyncio

from mipro import search as decide
from mipro.activity_models import BatchDraining
from mipro.job_models import JobState, MiproJobInput
from mipro.types import CandidateChoice, ChatMessage, CompiledCandidate, FewShotExample
from mipro.workflows.evaluation import EvaluationRequest
from mipro.workflows.iteration_batch import IterationBatch, draining_view
from mipro.workflows.job import Job
from tests.conftest import job_config

SEEDS = [1, 2, 3, 4]


def job() -> Job:
    answer = ChatMessage(role="assistant", content="lost_or_stolen_card")
    demo = FewShotExample(seed=7, stage_id="default", input="my card is lost", answer=answer, score=1.0)
    instructions = [["Classify.", "Classify carefully."]]
    state = JobState(instructions=instructions, demo_pool=[[demo]], demo_sets=[[[], [0]]])
    config = job_config("http://127.0.0.1:9", "http://127.0.0.1:9")
    return Job(MiproJobInput(job_id="pl_view", config=config, state=state))


async def test_the_view_merges_the_scores_so_far_and_frees_finished_trials() -> None:
    j = job()
    j.s.online_cache[j.baseline_hash()] = {1: 0.0, 2: 0.0}  # the baseline's earlier scores on the block
    done, half, none = (CandidateChoice(instruction=[i], demo_set=[d]) for i, d in ((1, 0), (0, 1), (1, 1)))
    baseline_block = EvaluationRequest("baseline-block", CompiledCandidate(stages=[]), [3, 4], "online")
    trials = [(done, "trial-0000"), (half, "trial-0001"), (none, "trial-0002")]
    results: asyncio.Future[list] = asyncio.get_running_loop().create_future()
    batch = IterationBatch(1, SEEDS, trials, baseline_block, None, [], results, "iteration-0001")  # type: ignore[arg-type]
    notice = BatchDraining(
        label="iteration-0001",
        scores={
            "baseline-block": {3: 0.0, 4: 1.0},
            "trial-0000": {1: 1.0, 2: 1.0, 3: 1.0, 4: 1.0},
            "trial-0001": {1: 1.0, 4: 1.0},
        },
    )
    view = draining_view(j, batch, notice)
    assert view.finished == {done.key}
    assert view.seen_seeds == {done.key: 4, half.key: 2, none.key: 0}
    lifts = {c.key: (c.paired_lift, c.minibatch_n) for c in view.summaries}
    assert lifts[done.key] == (0.75, 4), "1 - the baseline's 0, 0, 0, 1"
    assert lifts[half.key] == (0.5, 2), "on seeds 1 and 4 only"
    history = {tuple(p): (lift, n) for p, lift, n in decide.tpe_history(view.summaries, j.baseline.key)}
    assert tuple(none.as_params()) not in history, "no score yet: nothing to learn from"
    assert history[tuple(done.as_params())] == (0.75, 4)
    assert j.s.online_cache[j.baseline_hash()] == {1: 0.0, 2: 0.0}, "the job's own scores are untouched"
    assert all(c.key == j.baseline.key for c in j.summaries()), "nor its trials"
