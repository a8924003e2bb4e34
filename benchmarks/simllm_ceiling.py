"""Where the simulated LLM's ceiling is, per dataset and profile (SIMULATED LLM; pure, no servers, ~1 min).

    python benchmarks/simllm_ceiling.py [--replicates 5] [--test-size 500] [--out DIR]

On the held-out test rows of `benchmarks/vs_dspy.py`'s replicates (same splits), the test accuracy of:
- the baseline prompt (the task app's own messages);
- a random demo set: 3 random train rows as demos (mean of 10 draws), the baseline instruction;
- a built prompt: an instruction the simulated meta-model proposes from 12 bootstrapped rows (rows of
  the train pool the baseline answers right), with 4 further bootstrapped demos of distinct labels;
- the ceiling: that built prompt with zero-shot confusion off (the model's argmax accuracy).
Under the default profile a random demo set is close to the ceiling (it binds); under "hard" it is not.

Writes OUT/simllm_ceiling.md.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import fmt_mean_se, table  # noqa: E402
from benchmarks.vs_dspy_tasks import DATASETS, BenchTask, load_task  # noqa: E402
from mipro.logging_setup import configure_logging  # noqa: E402
from mipro.simllm.classifier import decide, roll_key  # noqa: E402
from mipro.simllm.meta import ProposalRequest, propose_from  # noqa: E402
from mipro.simllm.prompt import read_prompt  # noqa: E402
from mipro.simllm.settings import SimLLMSettings  # noqa: E402
from mipro.taskapps.banking77 import prompts as b77_prompts  # noqa: E402
from mipro.taskapps.clinc150 import prompts as clinc_prompts  # noqa: E402

Rows = list[tuple[str, str]]
POOL_SIZES = {"train": 100, "online": 240, "val": 100}  # as in vs_dspy.py
PROFILES = ("default", "hard")
RANDOM_DRAWS = 10


class Prompter:
    """The task app's messages for a query, with an instruction in place of the baseline and demos."""

    def __init__(self, task: BenchTask) -> None:
        self.module = b77_prompts if task.name == "banking77" else clinc_prompts
        self.labels = task.labels

    def messages(self, query: str, demos: Rows, instruction: str | None) -> list[dict[str, Any]]:
        system, final = self.module.build_messages(query, self.labels)
        if instruction is not None:
            content = system["content"].replace(self.module.SYSTEM_PATTERN, instruction)
            system = {"role": "system", "content": content}
        turns: list[dict[str, Any]] = []
        for text, label in demos:
            user = self.module.build_messages(text, self.labels)[1]
            turns += [user, {"role": "assistant", "content": f"Intent: {label}"}]
        return [system, *turns, final]

    def accuracy(self, settings: SimLLMSettings, rows: Rows, demos: Rows, instruction: str | None) -> float:
        right = 0
        for query, gold in rows:
            view = read_prompt(self.messages(query, demos, instruction))
            decision = decide(view, settings, roll_key(view.query, settings.seed, 0.0))
            right += decision is not None and decision.label == gold
        return right / len(rows)


def pools(n_rows: int, seed: int, test_size: int) -> tuple[list[int], list[int]]:
    """The train and test rows of vs_dspy.py's `Pools.make` for this seed."""
    order = list(range(n_rows))
    random.Random(seed).shuffle(order)
    start = sum(POOL_SIZES.values())
    return order[: POOL_SIZES["train"]], order[start : start + test_size]


def built_prompt(prompter: Prompter, settings: SimLLMSettings, train: Rows) -> tuple[str, Rows]:
    boot = [row for row in train if prompter.accuracy(settings, [row], [], None) == 1.0]
    request = ProposalRequest(
        basic=prompter.module.SYSTEM_PATTERN, task="", examples=boot[:12], history=[], tip="none", index=1
    )
    demos: Rows = []
    for row in boot[12:]:
        if row[1] not in {label for _, label in demos} and len(demos) < 4:
            demos.append(row)
    return propose_from(request, 1.0), demos


def measure(task: BenchTask, profile: str, replicates: int, test_size: int) -> dict[str, list[float]]:
    prompter, settings = Prompter(task), SimLLMSettings(profile=profile)  # type: ignore[arg-type]
    calm = settings.model_copy(update={"zero_shot_confusion": 0.0})
    out: dict[str, list[float]] = {"baseline": [], "random demos": [], "built prompt": [], "ceiling": []}
    for seed in range(replicates):
        train_i, test_i = pools(len(task.train), seed, test_size)
        train = [(task.train[i].text, task.train[i].label) for i in train_i]
        test = [(task.train[i].text, task.train[i].label) for i in test_i]
        instruction, demos = built_prompt(prompter, settings, train)
        rng = random.Random(seed)
        draws = [prompter.accuracy(settings, test, rng.sample(train, 3), None) for _ in range(RANDOM_DRAWS)]
        out["baseline"].append(prompter.accuracy(settings, test, [], None))
        out["random demos"].append(sum(draws) / len(draws))
        out["built prompt"].append(prompter.accuracy(settings, test, demos, instruction))
        out["ceiling"].append(prompter.accuracy(calm, test, demos, instruction))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicates", type=int, default=5)
    parser.add_argument("--test-size", type=int, default=500)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    configure_logging("WARNING")
    rows = []
    for name in DATASETS:
        task = load_task(name)
        for profile in PROFILES:
            found = measure(task, profile, args.replicates, args.test_size)
            rows.append([task.title, profile, *(fmt_mean_se(v) for v in found.values())])
            print(rows[-1], file=sys.stderr, flush=True)
    headers = ["dataset", "profile", "baseline", "random 3 demos", "built prompt", "ceiling"]
    note = (
        "SIMULATED LLM. Test accuracy on vs_dspy.py's held-out test rows, mean ± SE over "
        f"{args.replicates} replicates (their data splits); see the module docstring for each column."
    )
    text = table("Where the simulated LLM's ceiling is (SIMULATED LLM)", headers, rows, note)
    print(text)
    command = "python benchmarks/simllm_ceiling.py " + " ".join(argv if argv is not None else sys.argv[1:])
    md = [
        "# The simulated LLM's ceiling per profile (SIMULATED LLM)",
        "",
        f"Command: `{command.strip()}`",
        "",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "simllm_ceiling.md").write_text("\n".join([*md, text.rstrip(), ""]))


if __name__ == "__main__":
    main()
