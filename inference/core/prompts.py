"""Versioned prompt templates for step critiques.

A template is data: ``name`` + ``version`` identify it, :attr:`PromptTemplate.content_hash`
fingerprints what the model actually sees, and runs record both.

Rendering follows the R-PRM authors' step rows exactly (``rendering="rprm"``), for
step k of a solution (1-based):

* ``previous_steps`` = ``"Step 1: <text>\\nStep 2: <text>..."`` up to step k-1, or for
  k = 1 the sentence :data:`FIRST_STEP_TEXT`;
* ``now_step`` = ``"Step k: <text>"``;
* the user message = the template with those values (and the question, as given),
  then ``left-brackets``/``right-brackets`` replaced by ``{``/``}`` as their
  ``inference.py`` does.

Two placeholder styles: ``"named"`` (``{question}``, ``{previous_steps}``, ``{now_step}``,
substituted in one pass, other braces untouched, so LaTeX needs no escaping) and
``"positional"`` (the official files' three ``{}``, filled with Python's
``str.format`` exactly like the authors' scripts). Versions stored before this rendering
existed keep ``rendering="legacy"`` (their first-step line, an unnumbered Now Step), so
runs that used them re-render the same text.

A chat template becomes a list of messages (:meth:`PromptTemplate.render_messages`):
the system message if any, the few-shot pairs, the user message. Backends apply the
model's own chat template to that list (:func:`apply_chat`); nothing here flattens
messages by hand.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .verdict import VERDICT_QUESTION

PLACEHOLDERS: tuple[str, ...] = ("question", "previous_steps", "now_step")
# The authors' exact first-step sentence (their step rows and guided search).
FIRST_STEP_TEXT = "Since the Now Step is the first step, there are no Previous Steps."
LEGACY_FIRST_STEP_TEXT = "No previous steps: this is the first step."
RENDERINGS: tuple[str, ...] = ("rprm", "legacy")
STYLES: tuple[str, ...] = ("named", "positional")

_PLACEHOLDER_RE = re.compile(r"\{(question|previous_steps|now_step)\}")
# A positional field is ``{}`` or ``{0}``..``{2}``: nothing else reaches str.format's machinery.
_INDEX_RE = re.compile(r"[0-2]")

# Size limits: a template is a page of text, not a payload (the /templates/ page shows it whole).
MAX_TEMPLATE_CHARS = 64 * 1024
MAX_TEMPLATE_FILE_BYTES = 1024 * 1024  # the whole file, few-shot examples included
MAX_RENDERED_CHARS = 1_000_000  # far above any model context; a guard against blow-ups

Messages = list[dict[str, str]]


def format_previous_steps(previous_steps: Sequence[str]) -> str:
    """``Step i: <text>`` (1-based) joined by ``\\n``; the authors' sentence for none."""
    if not previous_steps:
        return FIRST_STEP_TEXT
    return "\n".join(f"Step {i}: {step}" for i, step in enumerate(previous_steps, 1))


def format_now_step(now_step: str, number: int) -> str:
    """``Step k: <text>``: the number is part of the Now Step in the authors' rows."""
    return f"Step {number}: {now_step}"


def replace_brackets(text: str) -> str:
    """The authors' inference writes literal braces in prompt files as these words."""
    return text.replace("left-brackets", "{").replace("right-brackets", "}")


def _legacy_previous_steps(previous_steps: Sequence[str]) -> str:
    if not previous_steps:
        return LEGACY_FIRST_STEP_TEXT
    return "\n".join(f"Step {i}: {step.strip()}" for i, step in enumerate(previous_steps, 1))


def question_for_prompt(problem_question: str, solution_metadata: Any = None) -> str:
    """The question exactly as the source gave it for this solution.

    Problems are matched on stripped text, so two items whose questions differ only in
    surrounding whitespace share a problem; importers that must reproduce the source's
    prompts byte for byte (PRMBench, R-PRM step rows) keep the exact text as
    ``prompt_question`` in the solution's metadata.
    """
    exact = (solution_metadata or {}).get("prompt_question") if isinstance(solution_metadata, dict) else None
    return exact if isinstance(exact, str) and exact.strip() else problem_question


def apply_chat(tokenizer: Any, messages: Messages) -> str:
    """The model's own chat template with the generation prompt: the one way to a chat prompt."""
    return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))


def prompt_text(prompt: str | Messages, tokenizer: Any) -> str:
    """Text for a backend prompt: strings pass through, messages go through the chat template."""
    if isinstance(prompt, str):
        return prompt
    if tokenizer is None:
        raise ValueError("a chat prompt needs the model's tokenizer to apply its chat template")
    return apply_chat(tokenizer, prompt)


Piece = tuple[str, int | None]  # literal text (escapes resolved), then the value index or None


def _plain_index(field_name: str, spec: str, conversion: str | None, auto: int) -> int:
    """The value index of one field, refusing anything but ``{}`` and ``{0}``..``{2}``."""
    shown = "{" + field_name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
    shown = shown if len(shown) <= 40 else shown[:37] + "...}"
    if conversion or spec:
        raise ValueError(
            f"field {shown} has a conversion or format spec; only plain '{{}}' fields are allowed"
        )
    if field_name == "":
        return auto
    if not _INDEX_RE.fullmatch(field_name):
        raise ValueError(f"field {shown} is not a plain positional field ('{{}}' or '{{0}}'..'{{2}}')")
    return int(field_name)


@functools.lru_cache(maxsize=64)
def positional_pieces(user: str) -> tuple[Piece, ...]:
    """Parse a positional template with :class:`string.Formatter` (``{{``/``}}`` are text, not fields).

    Exactly three plain fields (question, previous steps, now step), each value used once;
    a ``ValueError`` says which field is wrong.
    """
    if len(user) > MAX_TEMPLATE_CHARS:
        raise ValueError(f"is {len(user):,} characters, over the limit of {MAX_TEMPLATE_CHARS:,}")
    pieces: list[Piece] = []
    auto = 0
    try:
        parsed = list(string.Formatter().parse(user))
    except ValueError as exc:
        raise ValueError(
            f"has unbalanced braces ({exc}); write literal braces as '{{{{' and '}}}}'"
        ) from None
    for literal, field_name, spec, conversion in parsed:
        if field_name is None:
            pieces.append((literal, None))
            continue
        index = _plain_index(field_name, spec or "", conversion, auto)
        auto += field_name == ""
        pieces.append((literal, index))
    fields = [i for _, i in pieces if i is not None]
    if 0 < auto < len(fields):
        raise ValueError("mixes '{}' with numbered fields; use one kind")
    if sorted(fields) != [0, 1, 2]:
        raise ValueError(
            f"must hold exactly three '{{}}' placeholders (question, previous steps, now step), "
            f"found {len(fields)} field(s)"
        )
    return tuple(pieces)


def _fill_positional(user: str, values: tuple[str, str, str]) -> str:
    """What ``user.format(*values)`` gives for plain fields, without str.format."""
    return "".join(literal + (values[i] if i is not None else "") for literal, i in positional_pieces(user))


def _check_sizes(system: str, user: str, few_shot: tuple[tuple[str, str], ...]) -> None:
    """Each text field of a template stays under :data:`MAX_TEMPLATE_CHARS`."""
    named = [("system", system), ("user", user)]
    named += [(f"few_shot[{i}]", text) for i, pair in enumerate(few_shot) for text in pair]
    for key, text in named:
        if len(text) > MAX_TEMPLATE_CHARS:
            raise ValueError(
                f"field {key!r} is {len(text):,} characters, over the limit of {MAX_TEMPLATE_CHARS:,}"
            )


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    version: int
    system: str
    user: str
    few_shot: tuple[tuple[str, str], ...] = ()
    chat: bool = True
    style: str = "named"
    rendering: str = "rprm"
    # Where the text came from and the sha256 of that file's bytes (not part of the content hash).
    source: str = field(default="", compare=False)
    source_sha256: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("prompt template name must not be empty")
        if not isinstance(self.version, int) or self.version < 1:
            raise ValueError(f"prompt template version must be an integer >= 1, got {self.version!r}")
        if self.style not in STYLES:
            raise ValueError(f"style must be one of {', '.join(STYLES)}, got {self.style!r}")
        if self.rendering not in RENDERINGS:
            raise ValueError(f"rendering must be one of {', '.join(RENDERINGS)}, got {self.rendering!r}")
        if self.style == "positional":
            if self.rendering != "rprm":
                raise ValueError("positional templates always render the R-PRM way")
            try:
                positional_pieces(self.user)
            except ValueError as exc:
                raise ValueError(f"template of {self.name!r} {exc}") from None
        else:
            missing = [p for p in PLACEHOLDERS if "{" + p + "}" not in self.user]
            if missing:
                names = ", ".join("{" + p + "}" for p in missing)
                raise ValueError(f"user template of {self.name!r} lacks the placeholder(s) {names}")
        # Accept lists from JSON / callers but store hashable tuples.
        pairs = tuple((str(u), str(a)) for u, a in self.few_shot)
        object.__setattr__(self, "few_shot", pairs)
        _check_sizes(self.system, self.user, pairs)

    # -- identity ---------------------------------------------------------------

    def canonical(self) -> dict[str, Any]:
        """The content that determines what the model sees (name/version excluded)."""
        out: dict[str, Any] = {
            "system": self.system,
            "user": self.user,
            "few_shot": [list(p) for p in self.few_shot],
            "chat": self.chat,
        }
        # Versions stored before these fields existed keep their hash.
        if (self.style, self.rendering) != ("named", "legacy"):
            out["style"] = self.style
            out["rendering"] = self.rendering
        return out

    @property
    def content_hash(self) -> str:
        blob = json.dumps(self.canonical(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    # -- rendering --------------------------------------------------------------

    def render_user(self, question: str, previous_steps: Sequence[str], now_step: str) -> str:
        """The user message for the Now Step ``now_step`` after ``previous_steps``."""
        if self.rendering == "legacy":
            values = {
                "question": question.strip(),
                "previous_steps": _legacy_previous_steps(previous_steps),
                "now_step": now_step.strip(),
            }
            return _PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], self.user)
        prev = format_previous_steps(previous_steps)
        now = format_now_step(now_step, len(previous_steps) + 1)
        return self.render_user_from_row(question, prev, now)

    def render_user_from_row(self, question: str, previous_steps: str, now_step: str) -> str:
        """The user message from already formatted row fields (the authors' step rows)."""
        if self.style == "positional":
            text = _fill_positional(self.user, (question, previous_steps, now_step))
        else:
            values = {"question": question, "previous_steps": previous_steps, "now_step": now_step}
            text = _PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], self.user)
        if len(text) > MAX_RENDERED_CHARS:
            where = f"{self.source or self.name}: field 'user'"
            raise ValueError(
                f"{where}: the rendered prompt is {len(text):,} characters, over the limit of {MAX_RENDERED_CHARS:,}"
            )
        return replace_brackets(text) if self.rendering == "rprm" else text

    def wrap_user(self, user: str) -> Messages:
        """System (if any), few-shot pairs, then ``user``."""
        messages: Messages = []
        if self.system:
            messages.append({"role": "system", "content": self.system})
        for u, a in self.few_shot:
            messages.append({"role": "user", "content": u})
            messages.append({"role": "assistant", "content": a})
        messages.append({"role": "user", "content": user})
        return messages

    def render_messages(self, question: str, previous_steps: Sequence[str], now_step: str) -> Messages:
        return self.wrap_user(self.render_user(question, previous_steps, now_step))

    def render_plain(self, question: str, previous_steps: Sequence[str], now_step: str) -> str:
        """A non-chat template's whole prompt text.

        Official ``.txt`` files have no system or examples: the text is the template
        filled in. Our own plain templates join system, each few-shot ``user\\nassistant``
        pair and the user text with a blank line (empty parts skipped).
        """
        parts = [self.system] if self.system else []
        parts += [f"{u}\n{a}" for u, a in self.few_shot]
        parts.append(self.render_user(question, previous_steps, now_step))
        return "\n\n".join(parts)

    def render(self, question: str, previous_steps: Sequence[str], now_step: str) -> str | Messages:
        """What a backend receives: messages for a chat template, text otherwise."""
        if self.chat:
            return self.render_messages(question, previous_steps, now_step)
        return self.render_plain(question, previous_steps, now_step)

    def render_prompt(
        self,
        question: str,
        previous_steps: Sequence[str],
        now_step: str,
        tokenizer: Any = None,
    ) -> str:
        """The exact text fed to the model (chat templates through ``tokenizer``'s chat template)."""
        if self.chat and tokenizer is None:
            raise ValueError(f"template {self.name!r} is a chat template: pass the model's tokenizer")
        return prompt_text(self.render(question, previous_steps, now_step), tokenizer)

    def with_version(self, name: str | None = None, version: int | None = None) -> PromptTemplate:
        return PromptTemplate(
            name=name or self.name,
            version=version if version is not None else self.version,
            system=self.system,
            user=self.user,
            few_shot=self.few_shot,
            chat=self.chat,
            style=self.style,
            rendering=self.rendering,
            source=self.source,
            source_sha256=self.source_sha256,
        )


# Our own wording of the R-PRM critique instructions (five analyses + conclusion).
_DEFAULT_SYSTEM = "You are a meticulous mathematics reviewer who checks solutions one step at a time."

_DEFAULT_USER = f"""Check whether the Now Step of a solution to the math problem below is correct.

Write your review in these sections, in this order, each starting with its title:

Previous Steps Analysis: go through the previous steps one by one, say what each \
does and note any mistake in it.
Now Step Analysis: explain what the Now Step does and which part of the problem it \
addresses.
Data Source Analysis: list the facts and numbers the Now Step uses, say where each \
comes from (the problem or a given previous step) and whether it is used correctly.
Consistency Analysis: check that the Now Step agrees with the problem and the \
previous steps, and is consistent within itself.
Calculation Analysis: redo every calculation in the Now Step independently (for \
example by reversing it) and report any discrepancy.
Conclusion: state whether the Now Step is correct. Any error makes it incorrect. \
End your reply with exactly this line, with X replaced by Yes or No:
{VERDICT_QUESTION} X

Problem:
{{question}}

Previous Steps:
{{previous_steps}}

Now Step:
{{now_step}}"""

# Version 1 (same text, legacy rendering) may exist in databases; version 2 renders the
# previous and now steps exactly as the authors' step rows do.
DEFAULT_TEMPLATE = PromptTemplate(
    name="rprm-default",
    version=2,
    system=_DEFAULT_SYSTEM,
    user=_DEFAULT_USER,
    chat=True,
    rendering="rprm",
    source="built-in",
)


# -- loading ---------------------------------------------------------------------

_MARKER_RE = re.compile(r"^###\s*(system|user|example user|example assistant)\s*$", re.IGNORECASE)
_META_RE = re.compile(r"^\s*(name|version|chat)\s*:\s*(.*?)\s*$", re.IGNORECASE)


class TemplateFileError(ValueError):
    """One line naming the file and the key that could not be read."""

    def __init__(self, path: Path | str, key: str | None, message: str) -> None:
        where = f"{path}" + (f": key {key!r}" if key else "")
        super().__init__(f"{where}: {message}")


def _parse_bool(value: str, path: Path) -> bool:
    v = value.strip().lower()
    if v in ("true", "yes", "1"):
        return True
    if v in ("false", "no", "0"):
        return False
    raise TemplateFileError(path, "chat", f"must be true or false, got {value!r}")


def _style_of(text: str) -> str:
    return "named" if _PLACEHOLDER_RE.search(text) else "positional"


def load_template_file(
    path: str | Path, name: str | None = None, version: int | None = None
) -> PromptTemplate:
    """Load a prompt template file verbatim.

    * ``.json`` in the authors' layout (``src/prompts/GenPRM/*.json``): ``template``
      with three positional ``{}``, ``examples`` (objects with ``question``/``answer``
      or ``user``/``assistant`` keys, or ``[user, assistant]`` pairs) and an optional
      ``system-prompt``. A chat template, as their ``inference.py`` sends it.
      Our own JSON layout: ``user`` with named placeholders, optional ``system``,
      ``name``, ``version``, ``chat`` (default true), ``few_shot``.
    * text with ``### system`` / ``### example user`` / ``### example assistant`` /
      ``### user`` marker lines (optional ``name:``/``version:``/``chat:`` header):
      our sectioned layout.
    * any other text (the official ``.txt`` files): taken raw, byte for byte, as a
      non-chat template with three ``{}`` (or the named placeholders).

    ``name``/``version`` arguments override the file; the name defaults to the file
    stem and the version to 1. Raises :class:`TemplateFileError` (a ``ValueError``
    whose message is one line naming the file and the key).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_TEMPLATE_FILE_BYTES:
            raise TemplateFileError(
                path, None, f"is {size:,} bytes, over the limit of {MAX_TEMPLATE_FILE_BYTES:,}"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise TemplateFileError(path, None, f"cannot read the file ({exc.strerror or exc})") from None
    try:
        raw = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TemplateFileError(path, None, f"not UTF-8 text (byte {exc.start})") from None
    if path.suffix.lower() == ".json":
        fields = _load_json_template(raw, path)
    elif any(_MARKER_RE.match(line) for line in raw.replace("\r\n", "\n").split("\n")):
        fields = _load_text_template(raw, path)
    else:
        fields = {"user": raw, "system": "", "few_shot": (), "chat": False, "style": _style_of(raw)}
    fields["name"] = name or fields.get("name") or path.stem
    if version is None:
        try:
            version = int(fields.get("version") or 1)
        except (TypeError, ValueError):
            raise TemplateFileError(
                path, "version", f"must be an integer, got {fields.get('version')!r}"
            ) from None
    fields["version"] = version
    fields.setdefault("style", "named")
    fields["rendering"] = "rprm"
    fields["source"] = path.name
    fields["source_sha256"] = hashlib.sha256(data).hexdigest()
    key = "template" if fields.pop("_official", False) else "user"
    try:
        return PromptTemplate(**fields)
    except ValueError as exc:
        raise TemplateFileError(path, key, str(exc)) from None


def _example(ex: Any, path: Path, i: int) -> tuple[str, str]:
    key = f"examples[{i}]"
    if isinstance(ex, dict):
        for u, a in (("question", "answer"), ("user", "assistant")):
            if u in ex or a in ex:
                if not isinstance(ex.get(u), str) or not isinstance(ex.get(a), str):
                    raise TemplateFileError(path, key, f"needs string {u!r} and {a!r} values")
                return ex[u], ex[a]
        raise TemplateFileError(path, key, "expected 'question'/'answer' or 'user'/'assistant' keys")
    if isinstance(ex, list | tuple) and len(ex) == 2 and all(isinstance(x, str) for x in ex):
        return ex[0], ex[1]
    raise TemplateFileError(path, key, "expected an object or a [user, assistant] pair of strings")


def _load_json_template(raw: str, path: Path) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise TemplateFileError(path, None, f"not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(data, dict):
        raise TemplateFileError(path, None, "expected a JSON object")
    official = "user" not in data and "template" in data
    key = "template" if official else "user"
    user = data.get(key)
    if not isinstance(user, str):
        raise TemplateFileError(path, key if key in data else None, "needs a 'user' (or 'template') string")
    examples_key = "few_shot" if "few_shot" in data else "examples"
    examples = data.get(examples_key) or []
    if not isinstance(examples, list):
        raise TemplateFileError(path, examples_key, "expected a list")
    pairs = tuple(_example(ex, path, i) for i, ex in enumerate(examples))
    system_key = "system-prompt" if "system-prompt" in data else "system"
    system = data.get(system_key) or ""
    if not isinstance(system, str):
        raise TemplateFileError(path, system_key, "expected a string")
    chat = data.get("chat", True)
    if isinstance(chat, str):
        chat = _parse_bool(chat, path)
    return {
        "name": data.get("name"),
        "version": data.get("version"),
        "system": system,
        "user": user,
        "few_shot": pairs,
        "chat": bool(chat),
        "style": _style_of(user),
        "_official": official,
    }


def _load_text_template(raw: str, path: Path) -> dict[str, Any]:
    meta: dict[str, str] = {}
    blocks: list[tuple[str, list[str]]] = []
    for line in raw.replace("\r\n", "\n").split("\n"):
        marker = _MARKER_RE.match(line)
        if marker:
            blocks.append((marker.group(1).lower(), []))
            continue
        if not blocks:
            meta_match = _META_RE.match(line)
            if meta_match:
                meta[meta_match.group(1).lower()] = meta_match.group(2)
            elif line.strip():
                raise TemplateFileError(
                    path, None, f"unexpected text before the first '### ' marker: {line!r}"
                )
            continue
        blocks[-1][1].append(line)

    system = ""
    user: str | None = None
    pairs: list[tuple[str, str]] = []
    pending_user: str | None = None
    for kind, body_lines in blocks:
        body = "\n".join(body_lines).strip("\n")
        if kind == "system":
            system = body
        elif kind == "user":
            if user is not None:
                raise TemplateFileError(path, "### user", "more than one '### user' section")
            user = body
        elif kind == "example user":
            if pending_user is not None:
                raise TemplateFileError(path, "### example user", "without its '### example assistant'")
            pending_user = body
        else:
            if pending_user is None:
                raise TemplateFileError(
                    path, "### example assistant", "without a preceding '### example user'"
                )
            pairs.append((pending_user, body))
            pending_user = None
    if pending_user is not None:
        raise TemplateFileError(path, "### example user", "without its '### example assistant'")
    if user is None:
        raise TemplateFileError(path, "### user", "no '### user' section")
    return {
        "name": meta.get("name"),
        "version": meta.get("version"),
        "system": system,
        "user": user,
        "few_shot": tuple(pairs),
        "chat": _parse_bool(meta["chat"], path) if "chat" in meta else True,
        "style": _style_of(user),
    }
