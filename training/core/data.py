"""Training data for R-PRM: TRL rows, the DPO pair rule, and lengths taken from the data.

Rows follow TRL's *prompt-completion* (SFT) and *preference* (DPO) dataset types.
Conversational rows carry message lists and are rendered with the model's chat
template by TRL; plain rows carry the exact prompt text and TRL appends EOS to the
completion. Either way the loss is on the critique only.

The pair rule (R-PRM meta-optimisation), as the authors' ``operate-PRM-CoT-data_paired.py``
runs it: for each step, sampled critiques whose verdict agrees with the step's label
are *chosen*, those that disagree are *rejected*, unparseable ones are ignored; pairs
are chosen x rejected in sample order (chosen outer). Their ``--filter`` does two
things together: at most 2 pairs per step (the first two of that order) and steps
where agreeing critiques are at most 1/3 of the valid ones are dropped
(``max_pairs_per_step=2, min_agree_fraction=1/3``). Then :func:`balance_pairs` keeps
as many chosen-Yes as chosen-No pairs, before the split by problem. With
``rule="authors"`` and critique texts, chosen / rejected / valid are read from the
text exactly as their script does (see :func:`authors_side`).

No torch import here; only :func:`length_stats` needs a tokenizer.
"""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from inference.core.stats import percentile

Messages = list[dict[str, str]]


def _messages(messages: Sequence[Mapping[str, str]]) -> Messages:
    out = []
    for m in messages:
        if "role" not in m or "content" not in m:
            raise ValueError(f"a prompt message needs 'role' and 'content', got {dict(m)!r}")
        out.append({"role": str(m["role"]), "content": str(m["content"])})
    if not out:
        raise ValueError("prompt_messages must not be empty")
    if out[-1]["role"] == "assistant":
        raise ValueError("the prompt must end with a user (or system) message, not an assistant one")
    return out


def _check_prompt(prompt_messages: Any, prompt_text: Any) -> None:
    if (prompt_messages is None) == (prompt_text is None):
        raise ValueError("give exactly one of prompt_messages (chat) or prompt_text (plain)")


@dataclass(frozen=True)
class SFTExample:
    """One kept critique: the prompt the model saw and the critique it should write.

    ``meta`` (ids, labels, hashes) stays on the example for provenance and is not
    part of the TRL row.
    """

    completion: str
    prompt_messages: Sequence[Mapping[str, str]] | None = None
    prompt_text: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_prompt(self.prompt_messages, self.prompt_text)
        if not self.completion.strip():
            raise ValueError("the completion (critique) must not be empty")

    @property
    def conversational(self) -> bool:
        return self.prompt_messages is not None

    def to_row(self) -> dict[str, Any]:
        """TRL prompt-completion row, conversational when built from messages."""
        if self.prompt_messages is not None:
            return {
                "prompt": _messages(self.prompt_messages),
                "completion": [{"role": "assistant", "content": self.completion}],
            }
        return {"prompt": self.prompt_text, "completion": self.completion}

    @classmethod
    def from_template(
        cls,
        template: Any,
        question: str,
        previous_steps: Sequence[str],
        now_step: str,
        critique: str,
        meta: Mapping[str, Any] | None = None,
    ) -> SFTExample:
        """Build from an ``inference.core.prompts.PromptTemplate`` exactly as inference renders it."""
        return cls(
            completion=critique,
            meta=dict(meta or {}),
            **_template_prompt(template, question, previous_steps, now_step),
        )


@dataclass(frozen=True)
class DPOExample:
    """One preference pair for a step: a critique that agrees with the label and one that does not."""

    chosen: str
    rejected: str
    prompt_messages: Sequence[Mapping[str, str]] | None = None
    prompt_text: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_prompt(self.prompt_messages, self.prompt_text)

    def to_row(self) -> dict[str, Any]:
        """TRL preference row with an explicit prompt, conversational when built from messages."""
        if self.prompt_messages is not None:
            return {
                "prompt": _messages(self.prompt_messages),
                "chosen": [{"role": "assistant", "content": self.chosen}],
                "rejected": [{"role": "assistant", "content": self.rejected}],
            }
        return {"prompt": self.prompt_text, "chosen": self.chosen, "rejected": self.rejected}


def _template_prompt(
    template: Any, question: str, previous_steps: Sequence[str], now_step: str
) -> dict[str, Any]:
    if template.chat:
        return {"prompt_messages": template.render_messages(question, previous_steps, now_step)}
    return {"prompt_text": template.render_prompt(question, previous_steps, now_step)}


def to_rows(items: Iterable[SFTExample | DPOExample | Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Examples (or rows already in TRL form) as a list of TRL rows, all of one form."""
    rows = [item.to_row() if isinstance(item, SFTExample | DPOExample) else dict(item) for item in items]
    if rows:
        kinds = {(tuple(sorted(r)), isinstance(r.get("prompt"), list)) for r in rows}
        if len(kinds) > 1:
            raise ValueError(f"rows mix forms (keys / conversational): {sorted(kinds)}")
    return rows


# --- the DPO pair rule ------------------------------------------------------------


@dataclass(frozen=True)
class PreferencePair:
    step: Hashable
    chosen_index: int
    rejected_index: int


@dataclass
class PairStats:
    steps_considered: int = 0  # steps with a label
    steps_unlabelled: int = 0  # label None: skipped
    steps_dropped_by_filter: int = 0  # agreeing <= min_agree_fraction * valid
    steps_without_pair: int = 0  # no valid sample, or all agree, or all disagree
    steps_with_pairs: int = 0
    samples_valid: int = 0
    samples_unparseable: int = 0
    pairs: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class PairingResult:
    pairs: list[PreferencePair]
    stats: PairStats

    def __iter__(self) -> Iterator[PreferencePair]:
        return iter(self.pairs)

    def __len__(self) -> int:
        return len(self.pairs)


def _get(sample: Any, name: str) -> Any:
    return sample[name] if isinstance(sample, Mapping) else getattr(sample, name)


def _label_is_correct(label: Any, step: Hashable) -> bool | None:
    if label is None or isinstance(label, bool):
        return label
    if isinstance(label, str) and label.lower() in ("yes", "no"):
        return label.lower() == "yes"
    if isinstance(label, int) and label in (0, 1):
        return bool(label)
    raise ValueError(f"step {step!r}: label must be a bool, 'yes'/'no', 0/1 or None, got {label!r}")


def authors_side(text: str, correct: bool) -> str | None:
    """The authors' reading of one sampled critique for a step whose label is ``correct``.

    None: not valid (the Yes line and the No line do not occur exactly once between
    them). "chosen": the label's verdict line occurs once and, trailing full stops and
    whitespace removed, ends the text. "rejected": the label's line is absent (so the
    other one is there). "valid": the label's line is there but not at the end.
    """
    from inference.core.verdict import VERDICT_NO_LINE, VERDICT_YES_LINE, normalise_newlines

    text = normalise_newlines(text or "").strip()
    counts = (text.count(VERDICT_YES_LINE), text.count(VERDICT_NO_LINE))
    if counts not in ((1, 0), (0, 1)):
        return None
    target = VERDICT_YES_LINE if correct else VERDICT_NO_LINE
    if target not in text:
        return "rejected"
    return "chosen" if text.rstrip(".").strip().endswith(target) else "valid"


PAIR_ORDERS = ("authors", "spread")
PAIR_RULES = ("authors", "verdict")


def _pair_order(n_chosen: int, n_rejected: int, rng: random.Random) -> list[tuple[int, int]]:
    """Every (chosen, rejected) position pair, spread out first.

    Both lists are shuffled, then pairs come diagonal by diagonal, so the first
    min(n_chosen, n_rejected) pairs use distinct critiques on both sides: a cap of
    2 gives two different chosen and two different rejected critiques when the
    step has them.
    """
    c = list(range(n_chosen))
    r = list(range(n_rejected))
    rng.shuffle(c)
    rng.shuffle(r)
    grid = [(a, b) for a in range(n_chosen) for b in range(n_rejected)]
    grid.sort(key=lambda ab: ((ab[1] - ab[0]) % n_rejected, ab[0]))
    return [(c[a], r[b]) for a, b in grid]


def _check_pair_options(
    max_pairs_per_step: int | None, min_agree_fraction: float | Fraction | None, order: str, rule: str
) -> Fraction | None:
    """Validate the pair rule's options; the agreement threshold as an exact fraction."""
    if max_pairs_per_step is not None and max_pairs_per_step < 1:
        raise ValueError("max_pairs_per_step must be >= 1 or None")
    if order not in PAIR_ORDERS:
        raise ValueError(f"order must be one of {PAIR_ORDERS}, got {order!r}")
    if rule not in PAIR_RULES:
        raise ValueError(f"rule must be one of {PAIR_RULES}, got {rule!r}")
    if min_agree_fraction is None:
        return None
    # 1/3 given as a float must still compare exactly: 1 of 3 valid is dropped.
    threshold = Fraction(min_agree_fraction).limit_denominator(10_000)
    if not 0 <= threshold < 1:
        raise ValueError("min_agree_fraction must be in [0, 1)")
    return threshold


def _sides(
    step: Hashable, samples: Sequence[Any], correct: bool, rule: str, stats: PairStats
) -> tuple[list[int], list[int], int]:
    """(agreeing indices, disagreeing indices, other valid samples) of one step; counts
    the unparseable ones in ``stats``."""
    agree: list[int] = []
    disagree: list[int] = []
    other_valid = 0
    for i, sample in enumerate(samples):
        if rule == "authors":
            side = authors_side(_get(sample, "text"), correct)
            if side is None:
                stats.samples_unparseable += 1
            elif side == "valid":
                other_valid += 1
            else:
                (agree if side == "chosen" else disagree).append(i)
            continue
        verdict = _get(sample, "verdict")
        if verdict not in ("yes", "no", "unparseable"):
            raise ValueError(f"step {step!r} sample {i}: verdict must be yes/no/unparseable, got {verdict!r}")
        if verdict == "unparseable":
            stats.samples_unparseable += 1
            continue
        (agree if (verdict == "yes") == correct else disagree).append(i)
    return agree, disagree, other_valid


def build_preference_pairs(
    samples_by_step: Mapping[Hashable, Sequence[Any]],
    labels: Mapping[Hashable, Any],
    max_pairs_per_step: int | None = 2,
    min_agree_fraction: float | Fraction | None = None,
    seed: int = 0,
    order: str = "authors",
    rule: str = "verdict",
) -> PairingResult:
    """Apply the R-PRM pair rule.

    ``order="authors"``: chosen x rejected in sample order, chosen outer (their first
    two pairs); ``"spread"``: a seeded order that uses distinct critiques first.
    ``rule="authors"`` reads the sides from each sample's ``text`` (:func:`authors_side`);
    ``"verdict"`` from its parsed ``verdict``.

    ``samples_by_step`` maps a step key to its sampled critiques; each sample has
    ``verdict`` ('yes' | 'no' | 'unparseable') and ``text`` (attribute or mapping
    key). ``labels`` maps the same keys to the step's label: True / 'yes' = the
    step is correct; None = unlabelled, skipped. Indices in the result point into
    ``samples_by_step[step]``.

    ``max_pairs_per_step`` caps the pairs of a step (None: all chosen x rejected);
    which pairs are kept is a deterministic function of ``seed`` and the step key.
    ``min_agree_fraction`` (the authors: 1/3) drops a step when agreeing critiques
    are at most that fraction of its valid ones. Order of the checks: a step with
    no valid critique counts as without pair, then the filter, then a step lacking
    either side counts as without pair.
    """
    threshold = _check_pair_options(max_pairs_per_step, min_agree_fraction, order, rule)
    stats = PairStats()
    pairs: list[PreferencePair] = []
    for step, samples in samples_by_step.items():
        if step not in labels:
            raise KeyError(f"no label for step {step!r}")
        correct = _label_is_correct(labels[step], step)
        if correct is None:
            stats.steps_unlabelled += 1
            continue
        stats.steps_considered += 1
        agree, disagree, other_valid = _sides(step, samples, correct, rule, stats)
        valid = len(agree) + len(disagree) + other_valid
        stats.samples_valid += valid
        if valid == 0:
            stats.steps_without_pair += 1
            continue
        if threshold is not None and len(agree) <= threshold * valid:
            stats.steps_dropped_by_filter += 1
            continue
        if not agree or not disagree:
            stats.steps_without_pair += 1
            continue
        if order == "authors":
            grid = [(a, b) for a in range(len(agree)) for b in range(len(disagree))]
        else:
            grid = _pair_order(len(agree), len(disagree), random.Random(f"{seed}:{step!r}"))
        if max_pairs_per_step is not None:
            grid = grid[:max_pairs_per_step]
        pairs.extend(PreferencePair(step, agree[a], disagree[b]) for a, b in grid)
        stats.steps_with_pairs += 1
    stats.pairs = len(pairs)
    return PairingResult(pairs=pairs, stats=stats)


def balance_pairs(
    pairs: Sequence[PreferencePair], labels: Mapping[Hashable, Any], seed: int = 0
) -> tuple[list[PreferencePair], dict[str, int]]:
    """Keep as many pairs whose chosen verdict is Yes as No (the authors' 1:1 step
    before the split). Which pairs are kept is a hash of the seed and the pair, so the
    choice is deterministic; kept pairs stay in their input order."""
    import hashlib

    def unit(p: PreferencePair) -> int:
        key = f"{seed}:{p.step!r}:{p.chosen_index}:{p.rejected_index}".encode()
        return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")

    yes = [p for p in pairs if _label_is_correct(labels[p.step], p.step)]
    no = [p for p in pairs if not _label_is_correct(labels[p.step], p.step)]
    n = min(len(yes), len(no))
    keep = {id(p) for p in sorted(yes, key=unit)[:n]} | {id(p) for p in sorted(no, key=unit)[:n]}
    kept = [p for p in pairs if id(p) in keep]
    return kept, {
        "chosen_yes": len(yes),
        "chosen_no": len(no),
        "kept_each": n,
        "dropped_for_balance": len(pairs) - len(kept),
    }


def preference_examples(
    result: PairingResult | Iterable[PreferencePair],
    samples_by_step: Mapping[Hashable, Sequence[Any]],
    prompts: Mapping[Hashable, Sequence[Mapping[str, str]] | str],
) -> list[DPOExample]:
    """DPO examples for the pairs; ``prompts[step]`` is a message list (chat) or the exact prompt text."""
    out = []
    for pair in result:
        prompt = prompts[pair.step]
        samples = samples_by_step[pair.step]
        kwargs: dict[str, Any] = (
            {"prompt_text": prompt} if isinstance(prompt, str) else {"prompt_messages": prompt}
        )
        out.append(
            DPOExample(
                chosen=_get(samples[pair.chosen_index], "text"),
                rejected=_get(samples[pair.rejected_index], "text"),
                meta={
                    "step": pair.step,
                    "chosen_index": pair.chosen_index,
                    "rejected_index": pair.rejected_index,
                },
                **kwargs,
            )
        )
    return out


# --- sequence lengths from the data -------------------------------------------------


def _token_counts(
    tokenizer: Any, texts: list[Any], conversational: bool, batch_size: int, generation_prompt: bool = False
) -> list[int]:
    counts: list[int] = []
    for start in range(0, len(texts), batch_size):
        batch = texts[start : start + batch_size]
        if conversational:
            ids = tokenizer.apply_chat_template(
                batch, tokenize=True, return_dict=True, add_generation_prompt=generation_prompt
            )["input_ids"]
        else:
            ids = tokenizer(batch)["input_ids"]
        counts.extend(len(x) for x in ids)
    return counts


def length_stats(
    tokenizer: Any, rows: Iterable[SFTExample | DPOExample | Mapping[str, Any]], batch_size: int = 256
) -> dict[str, Any]:
    """Token lengths of the training sequences, tokenised the way TRL does it.

    A sequence is prompt + completion (SFT) or prompt + chosen / prompt + rejected
    (DPO, each its own sequence; a row counts with the longer one). Conversational
    rows go through the chat template; plain ones get EOS appended, as TRL does.
    Returns count, max, mean, p50/p90/p95/p99, prompt_max, and ``lengths`` (per
    row, in row order) so that :func:`choose_max_length` can count truncated rows;
    drop ``lengths`` before storing the summary.
    """
    rows = to_rows(rows)
    if not rows:
        return {
            "count": 0,
            "max": 0,
            "mean": 0.0,
            "p50": 0,
            "p90": 0,
            "p95": 0,
            "p99": 0,
            "prompt_max": 0,
            "lengths": [],
        }
    conversational = isinstance(rows[0]["prompt"], list)
    ends = ["completion"] if "completion" in rows[0] else ["chosen", "rejected"]
    eos = tokenizer.eos_token or ""

    def full(row: Mapping[str, Any], key: str) -> Any:
        if conversational:
            return row["prompt"] + row[key]
        text = row[key]
        return row["prompt"] + (text if text.endswith(eos) else text + eos)

    per_end = [
        _token_counts(tokenizer, [full(r, key) for r in rows], conversational, batch_size) for key in ends
    ]
    lengths = [max(values) for values in zip(*per_end, strict=True)]
    prompts = _token_counts(tokenizer, [r["prompt"] for r in rows], conversational, batch_size, True)
    ordered = sorted(lengths)
    return {
        "count": len(lengths),
        "max": ordered[-1],
        "mean": sum(lengths) / len(lengths),
        "p50": int(percentile(ordered, 0.5, method="nearest") or 0),
        "p90": int(percentile(ordered, 0.9, method="nearest") or 0),
        "p95": int(percentile(ordered, 0.95, method="nearest") or 0),
        "p99": int(percentile(ordered, 0.99, method="nearest") or 0),
        "prompt_max": max(prompts),
        "lengths": lengths,
    }


class TruncationError(ValueError):
    """A length cap would cut training sequences (and with them the verdict line)."""


def choose_max_length(
    stats: Mapping[str, Any], cap: int | None = None, *, multiple: int = 64, allow_truncation: bool = False
) -> int:
    """The sequence length to train with: the longest sequence, rounded up to ``multiple``.

    With a ``cap`` (GPU memory, the model's context), rows longer than the cap are
    counted: R-PRM critiques end with the verdict line, so truncating them trains
    on critiques without a verdict. That raises :class:`TruncationError` unless
    ``allow_truncation``, which warns instead and returns the cap.
    """
    longest = int(stats["max"])
    if longest <= 0:
        raise ValueError("no sequences: cannot choose a max_length")
    rounded = math.ceil(longest / multiple) * multiple
    if cap is None or rounded <= cap:
        return rounded
    lengths = stats.get("lengths")
    over = sum(1 for n in lengths if n > cap) if lengths is not None else None
    if over == 0:
        return cap
    count = stats.get("count", "?")
    what = f"{over} of {count} rows" if over is not None else "some rows"
    message = (
        f"max_length cap {cap} would truncate {what} (longest sequence {longest} tokens); "
        "truncation cuts the critique's verdict line"
    )
    if not allow_truncation:
        raise TruncationError(message + ": raise the cap or drop those rows")
    warnings.warn(message, stacklevel=2)
    return cap


def summarize_lengths(stats: Mapping[str, Any]) -> dict[str, Any]:
    """The stats without the per-row list, for storing on a run."""
    return {k: v for k, v in stats.items() if k != "lengths"}
