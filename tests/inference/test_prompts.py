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
    assert format_previous_steps(["a = 1", " b = 2 \n"]) == "Step 1: a = 1\nStep 2: b = 2"


def test_it_states_explicitly_when_there_are_no_previous_steps():
    user = make().render_user("What is 1+1?", [], "1+1=2")
    assert FIRST_STEP_TEXT in user
    assert "Step 1:" not in user


def test_it_substitutes_placeholders_once_and_leaves_other_braces_alone():
    template = make(user=r"$\frac{1}{2}$ {question} | {previous_steps} | {now_step} {other}")
    # A question that itself contains a placeholder name must not be re-expanded.
    user = template.render_user("Is {now_step} literal?", ["x"], "y")
    assert user == r"$\frac{1}{2}$ Is {now_step} literal? | Step 1: x | y {other}"


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
    assert messages[-1]["content"] == "Q: q\nPrev:\nStep 1: s1\nNow: s2"
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
    assert template.render_prompt("q", [], "s") == f"sys\n\nU\nA\n\nQ: q\nPrev:\n{FIRST_STEP_TEXT}\nNow: s"


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
    assert DEFAULT_TEMPLATE.chat is True and DEFAULT_TEMPLATE.version == 1
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


def test_it_loads_the_official_json_layout_with_positional_placeholders(tmp_path):
    path = tmp_path / "GenPRM-evaluate.json"
    template = "Check it.\n\nQuestion: {}\nPrevious Steps: {}\nNow Step: {}\nReply: "
    path.write_text(json.dumps({"examples": [], "template": template}), encoding="utf-8")
    t = load_template_file(path)
    assert (t.name, t.version, t.chat) == ("GenPRM-evaluate", 1, False)
    rendered = t.render_prompt("2+2?", ["a"], "b")
    assert rendered == "Check it.\n\nQuestion: 2+2?\nPrevious Steps: Step 1: a\nNow Step: b\nReply: "


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
