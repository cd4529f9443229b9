"""Training rows, the DPO pair rule and data-driven sequence lengths."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import pytest
from transformers import AutoTokenizer

from inference.core.prompts import DEFAULT_TEMPLATE, PromptTemplate
from inference.core.verdict import VERDICT_NO_LINE, VERDICT_YES_LINE
from training.core.data import (
    DPOExample,
    PreferencePair,
    SFTExample,
    TruncationError,
    authors_side,
    balance_pairs,
    build_preference_pairs,
    choose_max_length,
    length_stats,
    preference_examples,
    summarize_lengths,
    to_rows,
)


@dataclass
class Sample:
    verdict: str
    text: str


def samples(*verdicts: str) -> list[Sample]:
    return [Sample(v, f"critique {i} says {v}") for i, v in enumerate(verdicts)]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


# --- rows ---------------------------------------------------------------------------


def test_it_builds_conversational_prompt_completion_rows():
    example = SFTExample.from_template(
        DEFAULT_TEMPLATE, "What is 2+2?", ["2+2=4."], "So 4.", "Fine.\n" + VERDICT_YES_LINE
    )
    row = example.to_row()
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    assert "What is 2+2?" in row["prompt"][1]["content"] and "Step 1: 2+2=4." in row["prompt"][1]["content"]
    assert row["completion"] == [{"role": "assistant", "content": "Fine.\n" + VERDICT_YES_LINE}]


def test_it_builds_plain_rows_from_a_non_chat_template():
    plain = PromptTemplate(
        name="plain",
        version=1,
        system="",
        user="Q: {question}\n{previous_steps}\nNow: {now_step}\n",
        chat=False,
    )
    row = SFTExample.from_template(plain, "q", [], "s", "critique").to_row()
    assert row == {"prompt": plain.render_prompt("q", [], "s"), "completion": "critique"}
    pair = DPOExample(chosen="a", rejected="b", prompt_text="p").to_row()
    assert pair == {"prompt": "p", "chosen": "a", "rejected": "b"}


def test_it_wants_exactly_one_prompt_form():
    with pytest.raises(ValueError, match="exactly one"):
        SFTExample(completion="c")
    with pytest.raises(ValueError, match="exactly one"):
        SFTExample(completion="c", prompt_text="p", prompt_messages=[{"role": "user", "content": "u"}])
    with pytest.raises(ValueError, match="rows mix forms"):
        to_rows(
            [
                SFTExample(completion="c", prompt_text="p"),
                SFTExample(completion="c", prompt_messages=[{"role": "user", "content": "u"}]),
            ]
        )


# --- the pair rule --------------------------------------------------------------------


def test_it_pairs_agreeing_with_disagreeing_critiques_capped_per_step():
    by_step = {"s1": samples("yes", "yes", "no", "yes", "no")}  # label correct: yes agrees
    result = build_preference_pairs(by_step, {"s1": True}, max_pairs_per_step=2, order="spread")
    assert len(result.pairs) == 2
    for pair in result.pairs:
        assert by_step["s1"][pair.chosen_index].verdict == "yes"
        assert by_step["s1"][pair.rejected_index].verdict == "no"
    # Two pairs use two different critiques on each side.
    assert len({p.chosen_index for p in result.pairs}) == 2
    assert {p.rejected_index for p in result.pairs} == {2, 4}
    assert result.stats.pairs == 2 and result.stats.steps_with_pairs == 1

    uncapped = build_preference_pairs(by_step, {"s1": True}, max_pairs_per_step=None)
    assert {(p.chosen_index, p.rejected_index) for p in uncapped.pairs} == {
        (c, r) for c in (0, 1, 3) for r in (2, 4)
    }


def test_it_caps_deterministically():
    by_step = {(7, i): samples("yes", "no", "yes", "no", "yes", "no") for i in range(20)}
    labels = dict.fromkeys(by_step, False)  # the step is wrong: "no" agrees
    first = build_preference_pairs(by_step, labels, seed=3, order="spread").pairs
    assert first == build_preference_pairs(by_step, labels, seed=3, order="spread").pairs
    assert first != build_preference_pairs(by_step, labels, seed=4, order="spread").pairs
    assert all(by_step[p.step][p.chosen_index].verdict == "no" for p in first)
    assert len(first) == 40


def test_the_authors_order_is_chosen_by_rejected_in_sample_order():
    by_step = {"s1": samples("yes", "no", "yes", "no", "yes")}
    result = build_preference_pairs(by_step, {"s1": True}, max_pairs_per_step=2)
    assert [(p.chosen_index, p.rejected_index) for p in result.pairs] == [(0, 1), (0, 3)]


YES_LINE = "Verification: Is the step correct (Yes/No)? Yes"
NO_LINE = "Verification: Is the step correct (Yes/No)? No"


@pytest.mark.parametrize(
    ("text", "correct", "side"),
    [
        (f"ok\n{YES_LINE}", True, "chosen"),
        (f"ok\n{YES_LINE}.", True, "chosen"),
        (f"ok\nSo {YES_LINE}\n\n", True, "chosen"),
        (f"ok\n{YES_LINE}\nmore", True, "valid"),  # valid, agreeing line not at the end
        (f"ok\n{NO_LINE}\nmore", True, "rejected"),  # the other line anywhere
        (f"{YES_LINE}\n{NO_LINE}", True, None),
        (f"{YES_LINE}\n{YES_LINE}", True, None),
        ("no verdict", False, None),
    ],
)
def test_it_reads_sides_from_text_as_the_authors_script(text, correct, side):
    assert authors_side(text, correct) == side


def test_the_authors_rule_counts_valid_non_final_lines_in_the_one_third_filter():
    end = f"x\n{YES_LINE}"
    mid = f"x\n{YES_LINE}\nthen more"
    no = f"x\n{NO_LINE}"
    by_step = {"s": [{"verdict": "", "text": t} for t in (end, mid, no, mid)]}  # 1 chosen of 4 valid
    result = build_preference_pairs(by_step, {"s": True}, min_agree_fraction=1 / 3, rule="authors")
    assert result.stats.steps_dropped_by_filter == 1
    by_step = {"s": [{"verdict": "", "text": t} for t in (end, mid, no)]}  # 1 of 3: dropped too (<=)
    assert not build_preference_pairs(by_step, {"s": True}, min_agree_fraction=1 / 3, rule="authors").pairs
    by_step = {"s": [{"verdict": "", "text": t} for t in (end, end, no, mid)]}  # 2 of 4: kept
    pairs = build_preference_pairs(by_step, {"s": True}, min_agree_fraction=1 / 3, rule="authors").pairs
    assert [(p.chosen_index, p.rejected_index) for p in pairs] == [(0, 2), (1, 2)]


def test_it_balances_chosen_yes_and_no_pairs():
    pairs = [PreferencePair(s, i, 9) for s in ("a", "b", "c") for i in range(2)] + [PreferencePair("d", 0, 9)]
    labels = {"a": True, "b": True, "c": True, "d": False}
    kept, stats = balance_pairs(pairs, labels, seed=1)
    assert (stats["chosen_yes"], stats["chosen_no"], stats["kept_each"], len(kept)) == (6, 1, 1, 2)
    assert PreferencePair("d", 0, 9) in kept
    assert kept == balance_pairs(pairs, labels, seed=1)[0]


def test_it_drops_steps_where_agreeing_samples_are_at_most_a_third_of_valid_ones():
    by_step = {
        "third": samples("yes", "no", "no"),  # 1 of 3 agree: dropped
        "exact": samples("yes", "yes", "no", "no", "no", "no"),  # 2 of 6: dropped
        "above": samples("yes", "yes", "no", "no", "no"),  # 2 of 5: kept
        "none_agree": samples("no", "no"),  # 0 of 2: dropped by the filter
    }
    labels = dict.fromkeys(by_step, True)
    for fraction in (1 / 3, Fraction(1, 3)):
        result = build_preference_pairs(by_step, labels, min_agree_fraction=fraction)
        assert {p.step for p in result.pairs} == {"above"}
        assert result.stats.steps_dropped_by_filter == 3
        assert result.stats.steps_considered == 4
    unfiltered = build_preference_pairs(by_step, labels)
    assert {p.step for p in unfiltered.pairs} == {"third", "exact", "above"}
    assert unfiltered.stats.steps_without_pair == 1  # none_agree has nothing to choose


def test_it_makes_no_pairs_when_all_samples_agree():
    result = build_preference_pairs(
        {"a": samples("yes", "yes", "yes"), "b": samples("no", "no")}, {"a": "yes", "b": "no"}
    )
    assert result.pairs == []
    assert result.stats.steps_without_pair == 2 and result.stats.steps_with_pairs == 0


def test_it_excludes_unparseable_samples():
    by_step = {"s": samples("unparseable", "yes", "unparseable", "no", "unparseable", "unparseable")}
    result = build_preference_pairs(by_step, {"s": True}, max_pairs_per_step=None, min_agree_fraction=1 / 3)
    # Valid = 2 (1 agrees: 1/2 > 1/3), so the step stays; unparseable never pairs.
    assert [(p.chosen_index, p.rejected_index) for p in result.pairs] == [(1, 3)]
    assert result.stats.samples_unparseable == 4 and result.stats.samples_valid == 2
    only_unparseable = build_preference_pairs(
        {"u": samples("unparseable")}, {"u": True}, min_agree_fraction=1 / 3
    )
    assert (
        only_unparseable.stats.steps_without_pair == 1 and only_unparseable.stats.steps_dropped_by_filter == 0
    )


def test_it_skips_unlabelled_steps_and_rejects_bad_input():
    result = build_preference_pairs({"s": samples("yes", "no")}, {"s": None})
    assert result.pairs == [] and result.stats.steps_unlabelled == 1 and result.stats.steps_considered == 0
    with pytest.raises(KeyError):
        build_preference_pairs({"s": samples("yes")}, {})
    with pytest.raises(ValueError, match="verdict"):
        build_preference_pairs({"s": [Sample("maybe", "x")]}, {"s": True})
    with pytest.raises(ValueError, match="label"):
        build_preference_pairs({"s": samples("yes")}, {"s": "perhaps"})


def test_it_turns_pairs_into_conversational_dpo_rows():
    by_step = {
        "s": [
            {"verdict": "no", "text": "bad " + VERDICT_NO_LINE},
            {"verdict": "yes", "text": "good " + VERDICT_YES_LINE},
        ]
    }
    prompt = [{"role": "system", "content": "sys"}, {"role": "user", "content": "check"}]
    examples = preference_examples(build_preference_pairs(by_step, {"s": True}), by_step, {"s": prompt})
    assert to_rows(examples) == [
        {
            "prompt": prompt,
            "chosen": [{"role": "assistant", "content": "good " + VERDICT_YES_LINE}],
            "rejected": [{"role": "assistant", "content": "bad " + VERDICT_NO_LINE}],
        }
    ]
    assert examples[0].meta == {"step": "s", "chosen_index": 1, "rejected_index": 0}


# --- lengths from the data -----------------------------------------------------------


def test_it_measures_sequences_like_trl_tokenises_them(tokenizer):
    short = SFTExample(
        completion="ok " + VERDICT_YES_LINE, prompt_messages=[{"role": "user", "content": "hi"}]
    )
    long = SFTExample(
        completion="word " * 300 + VERDICT_NO_LINE, prompt_messages=[{"role": "user", "content": "hello"}]
    )
    stats = length_stats(tokenizer, [short, long])
    expected = [
        len(
            tokenizer.apply_chat_template(r["prompt"] + r["completion"], tokenize=True, return_dict=True)[
                "input_ids"
            ]
        )
        for r in to_rows([short, long])
    ]
    assert stats["lengths"] == expected and stats["max"] == max(expected) > 300
    assert stats["count"] == 2 and stats["p50"] == min(expected) and stats["p99"] == max(expected)
    assert "lengths" not in summarize_lengths(stats)

    plain = length_stats(tokenizer, [{"prompt": "Q: 1+1?\n", "completion": "Fine. " + VERDICT_YES_LINE}])
    assert plain["max"] == len(
        tokenizer("Q: 1+1?\nFine. " + VERDICT_YES_LINE + tokenizer.eos_token)["input_ids"]
    )

    pair = DPOExample(chosen="a", rejected="b " * 50, prompt_messages=[{"role": "user", "content": "u"}])
    assert (
        length_stats(tokenizer, [pair])["max"]
        == length_stats(
            tokenizer, [SFTExample(completion="b " * 50, prompt_messages=[{"role": "user", "content": "u"}])]
        )["max"]
    )


def test_it_chooses_max_length_from_the_data():
    stats = {"count": 5, "max": 1500, "lengths": [100, 900, 1200, 1300, 1500]}
    assert choose_max_length(stats) == 1536  # rounded up to a multiple of 64
    assert choose_max_length(stats, cap=4096) == 1536
    assert choose_max_length(stats, cap=1510) == 1510  # no row is cut, the cap wins over rounding
    with pytest.raises(TruncationError, match="3 of 5 rows"):
        choose_max_length(stats, cap=1024)
    with pytest.warns(UserWarning, match="truncate 3 of 5 rows"):
        assert choose_max_length(stats, cap=1024, allow_truncation=True) == 1024
    with pytest.raises(ValueError):
        choose_max_length({"count": 0, "max": 0, "lengths": []})
