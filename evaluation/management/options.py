"""Options shared by the evaluation commands."""

from __future__ import annotations

from django.core.management.base import CommandParser

from inference.core.generation import EVALUATION


def add_n_samples(parser: CommandParser) -> None:
    """K critiques per step: `--n-samples` (the runs' field name), with `--samples` and `-K` as aliases."""
    parser.add_argument(
        "--n-samples",
        "--samples",
        "-K",
        dest="n_samples",
        type=int,
        default=EVALUATION.n_samples,
        help=f"K critiques per step (default {EVALUATION.n_samples})",
    )
