import hashlib
import json

import pytest

from inference.core.prompts import (
    DEFAULT_TEMPLATE,
    FIRST_STEP_TEXT,
    PromptTemplate,
    format_previous_steps,
    load_template_file,
)
from inference.core.verdict import VERDICT_QUESTION

USER = "Q: {question}\nPrev:\n{previous_steps}\nNow: {now_step}"


def make(**kw):
    fields = {"name": "t", "version": 1, "system": "sys", "user": USER, "chat": False}
    fields.update(kw)
    return PromptTemplate(**fields)


class RecordingTokenizer:
    def __init__(self):
        self.calls = []

    def apply_chat_template(self, messages, tokenize=True, add_generation_prompt=False):
        self.calls.append((messages, tokenize, add_generation_prompt))
        return "|".join(f"{m['role']}:{m['content']}" for m in messages) + (
            "|assistant:" * add_generation_prompt
        )


def test_it_writes_previous_steps_one_based_joined_by_newlines():
    # As in the authors' step rows: the step text as given, "Step i: " before it.
    assert format_previous_steps(["a = 1", "b = 2"]) == "Step 1: a = 1\nStep 2: b = 2"
    assert FIRST_STEP_TEXT == "Since the Now Step is the first step, there are no Previous Steps."


def test_it_states_explicitly_when_there_are_no_previous_steps():
    user = make().render_user("What is 1+1?", [], "1+1=2")
    assert user.endswith(f"Prev:\n{FIRST_STEP_TEXT}\nNow: Step 1: 1+1=2")


def test_it_substitutes_placeholders_once_and_leaves_other_braces_alone():
    template = make(user=r"$\frac{1}{2}$ {question} | {previous_steps} | {now_step} {other}")
    # A question that itself contains a placeholder name must not be re-expanded.
    user = template.render_user("Is {now_step} literal?", ["x"], "y")
    assert user == r"$\frac{1}{2}$ Is {now_step} literal? | Step 1: x | Step 2: y {other}"


@pytest.mark.parametrize("missing", ["{question}", "{previous_steps}", "{now_step}"])
def test_it_rejects_a_user_template_without_a_placeholder(missing):
    with pytest.raises(ValueError, match=missing.strip("{}")):
        make(user=USER.replace(missing, ""))


def test_it_rejects_bad_names_and_versions():
    with pytest.raises(ValueError, match="name"):
        make(name=" ")
    with pytest.raises(ValueError, match="version"):
        make(version=0)


def test_it_hashes_content_not_name_or_version():
    a = make()
    assert len(a.content_hash) == 64
    assert a.content_hash == make(name="other", version=7).content_hash
    assert a.content_hash != make(system="sys2").content_hash
    assert a.content_hash != make(chat=True).content_hash
    assert a.content_hash != make(few_shot=[("u", "a")]).content_hash


def test_it_renders_messages_with_system_few_shot_then_user():
    template = make(few_shot=[("u1", "a1"), ("u2", "a2")])
    messages = template.render_messages("q", ["s1"], "s2")
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert messages[1]["content"] == "u1" and messages[4]["content"] == "a2"
    assert messages[-1]["content"] == "Q: q\nPrev:\nStep 1: s1\nNow: Step 2: s2"
    assert make(system="").render_messages("q", [], "s")[0]["role"] == "user"


def test_it_renders_chat_prompts_through_the_tokenizer_with_a_generation_prompt():
    tok = RecordingTokenizer()
    text = make(chat=True).render_prompt("q", [], "s", tokenizer=tok)
    messages, tokenize, add_generation_prompt = tok.calls[0]
    assert tokenize is False and add_generation_prompt is True
    assert text.startswith("system:sys|user:Q: q") and text.endswith("|assistant:")
    with pytest.raises(ValueError, match="tokenizer"):
        make(chat=True).render_prompt("q", [], "s")


def test_it_renders_plain_prompts_as_raw_text():
    template = make(few_shot=[("U", "A")])
    assert template.render_prompt("q", [], "s") == f"sys\n\nU\nA\n\nQ: q\nPrev:\n{FIRST_STEP_TEXT}\nNow: Step 1: s"


def test_it_ships_a_default_template_with_the_five_analyses_and_the_verdict_line():
    user = DEFAULT_TEMPLATE.user
    titles = [
        "Previous Steps Analysis",
        "Now Step Analysis",
        "Data Source Analysis",
        "Consistency Analysis",
        "Calculation Analysis",
        "Conclusion",
    ]
    positions = [user.index(t + ":") for t in titles]
    assert positions == sorted(positions)
    assert f"{VERDICT_QUESTION} X" in user
    assert DEFAULT_TEMPLATE.chat is True and DEFAULT_TEMPLATE.version == 2
    assert DEFAULT_TEMPLATE.rendering == "rprm"
    # Our own wording, not the official prompt's.
    assert "excellent math teacher" not in user + DEFAULT_TEMPLATE.system


def test_it_loads_a_text_template_file_with_header_and_examples(tmp_path):
    path = tmp_path / "official-ish.txt"
    path.write_text(
        "name: imported\r\nversion: 3\r\nchat: false\r\n"
        "### system\r\nBe careful.\r\n"
        "### example user\r\nU?\r\n### example assistant\r\nA.\r\n"
        "### user\r\n\r\nQuestion: {question}\r\n{previous_steps}\r\nNow Step: {now_step}\r\n\r\n",
        encoding="utf-8",
    )
    t = load_template_file(path)
    assert (t.name, t.version, t.chat) == ("imported", 3, False)
    assert t.system == "Be careful."
    assert t.few_shot == (("U?", "A."),)
    assert t.user == "Question: {question}\n{previous_steps}\nNow Step: {now_step}"
    assert load_template_file(path, name="x", version=9).version == 9


def test_it_loads_the_official_json_layout_as_chat_messages(tmp_path):
    path = tmp_path / "GenPRM-evaluate.json"
    template = "Check it.\n\nQuestion: {}\nPrevious Steps: {}\nNow Step: {}\nReply: "
    path.write_text(json.dumps({"examples": [], "template": template}), encoding="utf-8")
    t = load_template_file(path)
    assert (t.name, t.version, t.chat, t.style) == ("GenPRM-evaluate", 1, True, "positional")
    assert t.user == template  # verbatim
    assert t.render_messages("2+2?", ["a"], "b") == [
        {"role": "user", "content": "Check it.\n\nQuestion: 2+2?\nPrevious Steps: Step 1: a\nNow Step: Step 2: b\nReply: "}
    ]


def test_it_loads_our_json_layout(tmp_path):
    path = tmp_path / "mine.json"
    data = {"name": "mine", "version": 2, "system": "S", "user": USER, "few_shot": [["u", "a"]]}
    path.write_text(json.dumps(data), encoding="utf-8")
    t = load_template_file(path)
    assert (t.name, t.version, t.chat, t.few_shot) == ("mine", 2, True, (("u", "a"),))


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        ("### system\nS\n", ".txt", "no '### user'"),
        ("### user\nno placeholders here\n", ".txt", "placeholder"),
        ("### example user\nU\n### user\n" + USER, ".txt", "example assistant"),
        ("stray text\n### user\n" + USER, ".txt", "before the first"),
        ("version: two\n### user\n" + USER, ".txt", "version"),
        ("{not json", ".json", "JSON"),
        ('{"system": "S"}', ".json", "'user'"),
    ],
)
def test_it_rejects_malformed_template_files(tmp_path, content, suffix, message):
    path = tmp_path / f"bad{suffix}"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_template_file(path)


# --- the authors' prompt files (same shapes as NJUNLP/R-PRM src/prompts/GenPRM/) ---------

TEACHER_TEMPLATE = "Question: {}\nPrevious Steps: {}\nNow Step: {}\nPlease carefully analyze the correctness of the Now Step.\nReply:"


def test_it_imports_a_teacher_file_with_system_prompt_and_question_answer_examples(tmp_path):
    path = tmp_path / "GenPRM-generate-verify-CoT-new3.json"
    data = {
        "system-prompt": "You are an excellent math teacher.",
        "examples": [{"question": "Question: x?\nPrevious Steps: Step 1: a\\nStep 2: b\nNow Step: Step 3: c", "answer": "fine\nVerification: Is the step correct (Yes/No)? Yes"}],
        "template": TEACHER_TEMPLATE,
    }
    raw = json.dumps(data, indent=4).encode()
    path.write_bytes(raw)
    t = load_template_file(path)
    assert t.system == data["system-prompt"] and t.user == TEACHER_TEMPLATE
    assert t.few_shot == ((data["examples"][0]["question"], data["examples"][0]["answer"]),)
    assert t.source == path.name and t.source_sha256 == hashlib.sha256(raw).hexdigest()
    messages = t.render_messages("Find $x$ left-bracketsleft-brackets", ["s1"], "s2")
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    # template.format(question, previous_steps, now_step), then the bracket words replaced.
    assert messages[-1]["content"] == TEACHER_TEMPLATE.format("Find $x$ {{", "Step 1: s1", "Step 2: s2")


def test_it_takes_a_txt_prompt_raw(tmp_path):
    raw = "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQuestion: {}\nPrevious Steps: {}\nNow Step: {}\nReply: <|im_end|>\\n<|im_start|>assistant\\n"
    path = tmp_path / "GenPRM-evaluate-new3-qwen.txt"
    path.write_text(raw, encoding="utf-8")
    t = load_template_file(path)
    assert (t.user, t.chat, t.style, t.system, t.few_shot) == (raw, False, "positional", "", ())
    assert t.render_prompt("q", [], "a") == raw.format("q", FIRST_STEP_TEXT, "Step 1: a")
    assert t.render_prompt("q", [], "a").endswith("assistant\\n")  # the literal two characters kept


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"template": TEACHER_TEMPLATE, "examples": [{"prompt": "u", "reply": "a"}]}, "examples[0]"),
        ({"template": TEACHER_TEMPLATE, "examples": {"a": 1}}, "examples"),
        ({"template": TEACHER_TEMPLATE, "system-prompt": 3}, "system-prompt"),
        ({"template": "Only {} and {}"}, "template"),
        ({"template": "Q {} {} {} and {x}"}, "template"),
    ],
)
def test_an_unreadable_prompt_file_gets_one_line_naming_file_and_key(tmp_path, data, key):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError) as info:
        load_template_file(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and repr(key) in message


def test_legacy_versions_keep_their_text_and_hash():
    legacy = make(rendering="legacy")
    assert legacy.render_user("q", [], " s ") == "Q: q\nPrev:\nNo previous steps: this is the first step.\nNow: s"
    # The hash of a version stored before the rendering field existed is unchanged.
    old = {"system": "sys", "user": USER, "few_shot": [], "chat": False}
    blob = json.dumps(old, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert legacy.content_hash == hashlib.sha256(blob.encode()).hexdigest()
    assert make().content_hash != legacy.content_hash
