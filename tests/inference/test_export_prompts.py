"""export_prompts: the authors' ProcessBench step rows come out byte for byte as their
inference script builds the messages, and critiques come back with import_critiques."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from annotations.actions import import_file
from inference.models import Critique, GenerationRun

# Same shape as NJUNLP/R-PRM src/prompts/GenPRM/GenPRM-evaluate-new3.json (our own wording).
EVAL_TEMPLATE = (
    "Judge the Now Step; end with \"Verification: Is the step correct (Yes/No)? X\".\n\n"
    "Question: {}\nPrevious Steps: {}\nNow Step: {}\nPlease carefully analyze the correctness of the Now Step.\nReply: "
)
FIRST = "Since the Now Step is the first step, there are no Previous Steps."
QUESTION = "Let $f(x) = \\frac{1}{x}$ and write left-bracketsa, bright-brackets. Find $f(2)$."
SOLUTIONS = {
    # origin: (steps, first-error index) -- ProcessBench math rows, stopping at the first error.
    "math-0": (["We have $f(2) = \\frac{1}{2}$.", "So the answer is\n$\\boxed{\\frac12}$."], -1),
    "math-1": (["$f(2) = 2$.", "Thus $f(2)=2$.", "Done: $2$."], 0),
    "math-2": (["Since $x = 2$, {x} is 2.", "$f(2) = 1/3$.", "Answer 1/3."], 1),
}


def authors_rows():
    """Rows as the authors' *_filtered.json: numeric id, origin_id, question, previous_steps, now_step, label."""
    rows, n = [], 0
    for origin, (steps, label) in SOLUTIONS.items():
        last = len(steps) if label == -1 else label + 1
        for k in range(last):
            previous = "\n".join(f"Step {i + 1}: {s}" for i, s in enumerate(steps[:k])) or FIRST
            rows.append({"id": n, "origin_id": origin, "question": QUESTION, "previous_steps": previous,
                         "now_step": f"Step {k + 1}: {steps[k]}", "label": label})  # fmt: skip
            n += 1
    return rows


def authors_messages(template_file: dict, row: dict) -> list[dict]:
    """What src/utils/inference.py builds for a .json prompt (load_json_prompt + build_prompt)."""
    pre = [{"role": "system", "content": template_file["system-prompt"]}] if "system-prompt" in template_file else []
    for ex in template_file["examples"]:
        pre += [{"role": "user", "content": ex["question"]}, {"role": "assistant", "content": ex["answer"]}]
    now = template_file["template"].format(row["question"], row["previous_steps"], row["now_step"])
    now = now.replace("left-brackets", "{").replace("right-brackets", "}")
    return pre + [{"role": "user", "content": now}]


@pytest.fixture
def imported(db, tmp_path):
    rows = authors_rows()
    path = tmp_path / "math-part_filtered.json"
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=4), encoding="utf-8")
    dataset = import_file(path, dataset_name="pb-math-part").dataset
    prompt = {"examples": [], "template": EVAL_TEMPLATE}
    prompt_path = tmp_path / "GenPRM-evaluate-new3.json"
    prompt_path.write_text(json.dumps(prompt, indent=4), encoding="utf-8")
    call_command("import_template", str(prompt_path))
    return rows, prompt, dataset


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_every_step_row_comes_out_as_the_authors_messages(imported, tmp_path):
    rows, prompt, dataset = imported
    assert dataset.source_format == "rprm_steps"
    out = tmp_path / "prompts.jsonl"
    call_command("export_prompts", dataset="pb-math-part", template="GenPRM-evaluate-new3", out=str(out),
                 through_first_error=True)  # fmt: skip
    exported = read_jsonl(out)
    assert len(exported) == len(rows) == 5
    by_key = {(e["solution"], e["step"]): e for e in exported}
    steps_of = {o: s for o, (s, _) in SOLUTIONS.items()}
    for row in rows:
        k = steps_of[row["origin_id"]].index(row["now_step"].split(": ", 1)[1]) + 1
        line = by_key[(row["origin_id"], k)]
        assert line["messages"] == authors_messages(prompt, row)
        assert "prompt" not in line
    # The step labels were derived from the first-error index.
    from annotations.models import Solution

    labels = {s.source_id: [st.label for st in s.steps.order_by("index")] for s in Solution.objects.all()}
    assert labels == {"math-0": ["correct", "correct"], "math-1": ["incorrect"], "math-2": ["correct", "incorrect"]}


def test_a_raw_text_template_exports_prompt_text_and_critiques_come_back(imported, tmp_path):
    rows, _, dataset = imported
    raw = "<|im_start|>user\nQ: {}\nP: {}\nN: {}<|im_end|>\n<|im_start|>assistant\n"
    (tmp_path / "raw.txt").write_text(raw, encoding="utf-8")
    call_command("import_template", str(tmp_path / "raw.txt"))
    out = tmp_path / "p.jsonl"
    call_command("export_prompts", dataset="pb-math-part", template="raw@1", out=str(out))
    exported = read_jsonl(out)
    assert (exported[0]["solution"], exported[0]["step"], "messages" in exported[0]) == ("math-0", 1, False)
    expected_first = raw.format(rows[0]["question"], rows[0]["previous_steps"], rows[0]["now_step"])
    assert exported[0]["prompt"] == expected_first.replace("left-brackets", "{").replace("right-brackets", "}")

    # A batch job writes one critique per exported line, carrying solution/step through.
    critiques = tmp_path / "critiques.jsonl"
    with critiques.open("w") as f:
        for e in exported:
            verdict = "Yes" if e["solution"] == "math-0" else "No"
            f.write(json.dumps({"solution": e["solution"], "step": e["step"],
                                "text": f"Fine.\nVerification: Is the step correct (Yes/No)? {verdict}"}) + "\n")  # fmt: skip
    call_command("import_critiques", str(critiques), dataset="pb-math-part", model="cluster-teacher", template="raw")
    run = GenerationRun.objects.get(kind="imported")
    assert run.template.name == "raw" and run.critiques_done == len(exported) == 5
    got = {(c.step.solution.source_id, c.step.index + 1): c.verdict for c in Critique.objects.select_related("step__solution")}
    assert got == {(e["solution"], e["step"]): ("yes" if e["solution"] == "math-0" else "no") for e in exported}


def test_it_answers_json(imported, tmp_path):
    import io

    out = io.StringIO()
    call_command("export_prompts", "--dataset", "pb-math-part", "--template", "GenPRM-evaluate-new3@1",
                 "--out", str(tmp_path / "p.jsonl"), "--json", stdout=out)  # fmt: skip
    result = json.loads(out.getvalue().strip().splitlines()[-1])
    assert (result["rows"], result["chat"], result["version"]) == (5, True, 1)


def test_it_names_a_missing_template_or_version(imported, tmp_path):
    with pytest.raises(CommandError, match="no template 'GenPRM-evaluate-new3@7'"):
        call_command("export_prompts", dataset="pb-math-part", template="GenPRM-evaluate-new3@7",
                     out=str(tmp_path / "x.jsonl"))  # fmt: skip
    assert not (tmp_path / "x.jsonl").exists()
