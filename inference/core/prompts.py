"""Versioned prompt templates for step critiques.

A template is data: ``name`` + ``version`` identify it, :attr:`PromptTemplate.content_hash`
fingerprints what the model actually sees, and runs record both. The user template
holds three placeholders, ``{question}``, ``{previous_steps}`` and ``{now_step}``.
They are substituted in one pass and nothing else in the text is touched, so LaTeX
braces in a template or in the data need no escaping.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .verdict import VERDICT_QUESTION

PLACEHOLDERS: tuple[str, ...] = ("question", "previous_steps", "now_step")
FIRST_STEP_TEXT = "No previous steps: this is the first step."

_PLACEHOLDER_RE = re.compile(r"\{(question|previous_steps|now_step)\}")


def format_previous_steps(previous_steps: Sequence[str]) -> str:
    """``Step i: <text>`` (1-based) joined by newlines; an explicit line for none."""
    if not previous_steps:
        return FIRST_STEP_TEXT
    return "\n".join(f"Step {i}: {step.strip()}" for i, step in enumerate(previous_steps, 1))


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    version: int
    system: str
    user: str
    few_shot: tuple[tuple[str, str], ...] = ()
    chat: bool = True

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("prompt template name must not be empty")
        if not isinstance(self.version, int) or self.version < 1:
            raise ValueError(f"prompt template version must be an integer >= 1, got {self.version!r}")
        missing = [p for p in PLACEHOLDERS if "{" + p + "}" not in self.user]
        if missing:
            names = ", ".join("{" + p + "}" for p in missing)
            raise ValueError(f"user template of {self.name!r} lacks the placeholder(s) {names}")
        # Accept lists from JSON / callers but store hashable tuples.
        pairs = tuple((str(u), str(a)) for u, a in self.few_shot)
        object.__setattr__(self, "few_shot", pairs)

    # -- identity ---------------------------------------------------------------

    def canonical(self) -> dict[str, Any]:
        """The content that determines what the model sees (name/version excluded)."""
        return {
            "system": self.system,
            "user": self.user,
            "few_shot": [list(p) for p in self.few_shot],
            "chat": self.chat,
        }

    @property
    def content_hash(self) -> str:
        blob = json.dumps(self.canonical(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    # -- rendering --------------------------------------------------------------

    def render_user(self, question: str, previous_steps: Sequence[str], now_step: str) -> str:
        values = {
            "question": question.strip(),
            "previous_steps": format_previous_steps(previous_steps),
            "now_step": now_step.strip(),
        }
        return _PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], self.user)

    def render_messages(
        self, question: str, previous_steps: Sequence[str], now_step: str
    ) -> list[dict[str, str]]:
        messages: list[dict[str, str]] = []
        if self.system:
            messages.append({"role": "system", "content": self.system})
        for user, assistant in self.few_shot:
            messages.append({"role": "user", "content": user})
            messages.append({"role": "assistant", "content": assistant})
        messages.append({"role": "user", "content": self.render_user(question, previous_steps, now_step)})
        return messages

    def render_prompt(
        self,
        question: str,
        previous_steps: Sequence[str],
        now_step: str,
        tokenizer: Any = None,
    ) -> str:
        """The exact text fed to the model.

        Chat templates go through ``tokenizer.apply_chat_template(...,
        add_generation_prompt=True)``, so a tokenizer is required. Plain templates are
        system, each few-shot ``user\\nassistant`` pair and the user text, joined by a
        blank line (empty parts skipped).
        """
        if self.chat:
            if tokenizer is None:
                raise ValueError(f"template {self.name!r} is a chat template: pass the model's tokenizer")
            messages = self.render_messages(question, previous_steps, now_step)
            return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        parts = [self.system] if self.system else []
        parts += [f"{u}\n{a}" for u, a in self.few_shot]
        parts.append(self.render_user(question, previous_steps, now_step))
        return "\n\n".join(parts)

    def with_version(self, name: str | None = None, version: int | None = None) -> PromptTemplate:
        return PromptTemplate(
            name=name or self.name,
            version=version if version is not None else self.version,
            system=self.system,
            user=self.user,
            few_shot=self.few_shot,
            chat=self.chat,
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

DEFAULT_TEMPLATE = PromptTemplate(
    name="rprm-default",
    version=1,
    system=_DEFAULT_SYSTEM,
    user=_DEFAULT_USER,
    chat=True,
)


# -- loading ---------------------------------------------------------------------

_MARKER_RE = re.compile(r"^###\s*(system|user|example user|example assistant)\s*$", re.IGNORECASE)
_META_RE = re.compile(r"^\s*(name|version|chat)\s*:\s*(.*?)\s*$", re.IGNORECASE)


def _positional_to_named(user: str) -> str:
    """The official R-PRM JSON prompts use three positional ``{}`` placeholders."""
    if _PLACEHOLDER_RE.search(user) is None and user.count("{}") == 3:
        for name in PLACEHOLDERS:
            user = user.replace("{}", "{" + name + "}", 1)
    return user


def _parse_bool(value: str, path: Path) -> bool:
    v = value.strip().lower()
    if v in ("true", "yes", "1"):
        return True
    if v in ("false", "no", "0"):
        return False
    raise ValueError(f"{path}: chat must be true or false, got {value!r}")


def load_template_file(
    path: str | Path, name: str | None = None, version: int | None = None
) -> PromptTemplate:
    """Load a prompt template from a ``.json`` or a text file.

    JSON (``.json``): an object with ``user`` (or ``template``) and optional
    ``system``, ``name``, ``version``, ``chat`` (default true) and ``few_shot`` (or
    ``examples``: a list of ``[user, assistant]`` pairs or ``{"user":..,
    "assistant":..}`` objects). A ``template`` with exactly three positional ``{}``
    (the official NJUNLP/R-PRM ``*.json`` prompt files) is read as question,
    previous steps, now step in that order; such files default to ``chat: false``,
    since their text is the whole raw prompt.

    Text (any other suffix)::

        name: my-prompt          <- optional header lines before the first marker
        version: 2
        chat: true
        ### system
        ...system text...
        ### example user        <- optional few-shot pairs, repeatable
        ...
        ### example assistant
        ...
        ### user
        ...user text with {question} {previous_steps} {now_step}...

    Markers are whole lines; section text is stripped of surrounding blank lines.
    ``name``/``version`` arguments override the file; the name defaults to the file
    stem and the version to 1. Raises ``ValueError`` for malformed files.
    """
    path = Path(path)
    raw = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        fields = _load_json_template(raw, path)
    else:
        fields = _load_text_template(raw, path)
    fields["name"] = name or fields.get("name") or path.stem
    if version is None:
        try:
            version = int(fields.get("version") or 1)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: version must be an integer, got {fields.get('version')!r}") from exc
    fields["version"] = version
    try:
        return PromptTemplate(**fields)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def _load_json_template(raw: str, path: Path) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    official = "user" not in data and "template" in data
    user = data.get("user", data.get("template"))
    if not isinstance(user, str):
        raise ValueError(f"{path}: needs a 'user' (or 'template') string")
    pairs = []
    for ex in data.get("few_shot", data.get("examples", [])) or []:
        if isinstance(ex, dict):
            pairs.append((ex["user"], ex["assistant"]))
        elif isinstance(ex, list | tuple) and len(ex) == 2:
            pairs.append((ex[0], ex[1]))
        else:
            raise ValueError(f"{path}: few-shot examples must be [user, assistant] pairs")
    chat = data.get("chat", not official)
    if isinstance(chat, str):
        chat = _parse_bool(chat, path)
    return {
        "name": data.get("name"),
        "version": data.get("version"),
        "system": data.get("system", "") or "",
        "user": _positional_to_named(user),
        "few_shot": tuple(pairs),
        "chat": bool(chat),
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
                raise ValueError(f"{path}: unexpected text before the first '### ' marker: {line!r}")
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
                raise ValueError(f"{path}: more than one '### user' section")
            user = body
        elif kind == "example user":
            if pending_user is not None:
                raise ValueError(f"{path}: '### example user' without its '### example assistant'")
            pending_user = body
        else:
            if pending_user is None:
                raise ValueError(f"{path}: '### example assistant' without a preceding '### example user'")
            pairs.append((pending_user, body))
            pending_user = None
    if pending_user is not None:
        raise ValueError(f"{path}: '### example user' without its '### example assistant'")
    if user is None:
        raise ValueError(f"{path}: no '### user' section")
    return {
        "name": meta.get("name"),
        "version": meta.get("version"),
        "system": system,
        "user": user,
        "few_shot": tuple(pairs),
        "chat": _parse_bool(meta["chat"], path) if "chat" in meta else True,
    }
