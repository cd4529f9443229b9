"""The quickstart's pipeline stages, run through the real workers.

Each stage queues a run and waits for it, printing progress; later issues add
stages (teacher pass, SFT/DPO, evaluation).
"""

from __future__ import annotations


def run_pipeline(command, dataset) -> None:
    command.stdout.write(f"• Demo dataset: {dataset.n_solutions} solutions, {dataset.n_steps} steps")
