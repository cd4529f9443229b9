"""What every format parser produces, and the validation helpers they share.

Plain Python, no Django: a parser turns `(location, record)` pairs into
`ParsedSolution`s and raises `ImportValidationError` naming file, place and field.
The writer (Django) stores them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .errors import ImportValidationError, show

# Step labels: the values of annotations.models.Step.Label.
CORRECT = "correct"
INCORRECT = "incorrect"
NEUTRAL = "neutral"
UNLABELLED = "unlabelled"
RATING0_CHOICES = (CORRECT, INCORRECT, NEUTRAL)

# Column limits of Problem/Solution (checked here so a long id is a validation error
# with a line number, not a database error). tests assert they match the models.
MAX_SOURCE_ID = 200
MAX_GENERATOR = 200

# Options any format may be given; each parser records only those it uses.
OPTION_DEFAULTS: dict[str, Any] = {"rating0": CORRECT}
MAX_WARNINGS_KEPT = 50


@dataclass(slots=True)
class ParsedStep:
    text: str
    label: str
    source_rating: int | None = None
    # Other labelled candidates for this position: [{"text", "rating", "label", ...}].
    alternatives: list[dict[str, Any]] | None = None


@dataclass(slots=True)
class ParsedSolution:
    location: str  # where the record was, for errors raised while writing
    problem_key: str  # Problem.source_id
    question: str
    source_id: str  # Solution.source_id
    steps: list[ParsedStep]
    first_error_index: int | None
    reference_answer: str = ""
    problem_metadata: dict[str, Any] = field(default_factory=dict)
    generator: str = ""
    final_answer_correct: bool | None = None
    error_type: str | None = None  # an ErrorType slug
    metadata: dict[str, Any] = field(default_factory=dict)


def first_error_index(labels: Iterable[str]) -> int | None:
    """0-based index of the earliest incorrect step; -1 when no step is incorrect and
    none is unlabelled (neutral is "not wrong"); None when unknown or there are no steps."""
    labels = list(labels)
    if not labels:
        return None
    for i, label in enumerate(labels):
        if label == INCORRECT:
            return i
    return None if UNLABELLED in labels else -1


def question_key(text: str) -> str:
    """A problem's identity when the source has no problem id: a hash of its text."""
    return "q-" + hashlib.sha256(text.strip().encode("utf-8")).hexdigest()[:24]


_TYPE_NAMES = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}


def type_name(value: Any) -> str:
    return _TYPE_NAMES.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )


def normalize_options(
    options: dict[str, Any] | None, uses: tuple[str, ...], file_name: str = "options"
) -> dict[str, Any]:
    """Validate `options` and return those in `uses`, defaults filled in."""
    options = dict(options or {})
    for name in options:
        if name not in OPTION_DEFAULTS:
            raise ImportValidationError(
                file_name, "options", name, f"unknown option (known: {', '.join(sorted(OPTION_DEFAULTS))})"
            )
    out = {name: OPTION_DEFAULTS[name] if options.get(name) in (None, "") else options[name] for name in uses}
    rating0 = options.get("rating0")
    if rating0 not in (None, "") and rating0 not in RATING0_CHOICES:
        raise ImportValidationError(
            file_name,
            "options",
            "rating0",
            f"expected one of {', '.join(RATING0_CHOICES)}, got {show(rating0)}",
        )
    return out


class Parser:
    """One format. Subclasses set `fmt`, `uses_options`, implement `matches` and
    `parse_record` (or `parse` when records must be regrouped)."""

    fmt: ClassVar[str]
    uses_options: ClassVar[tuple[str, ...]] = ()
    # Derived ids (not given by the source) may repeat; they get a '#2' suffix instead of failing.
    derived_ids: ClassVar[bool] = False

    def __init__(self, file_name: str, options: dict[str, Any] | None = None) -> None:
        self.file = file_name
        self.options = self.normalize_options(options, file_name)
        self.warnings: list[str] = []
        self.n_warnings = 0
        self._seen_ids: set[str] = set()

    # -- options ---------------------------------------------------------------
    @classmethod
    def normalize_options(cls, options: dict[str, Any] | None, file_name: str = "options") -> dict[str, Any]:
        """The options this format records (defaults filled in); unknown names and bad values raise."""
        return normalize_options(options, cls.uses_options, file_name)

    # -- detection and parsing ---------------------------------------------------
    @classmethod
    def matches(cls, record: dict[str, Any]) -> bool:
        raise NotImplementedError

    def parse(self, records: Iterable[tuple[str, Any]]) -> Iterator[ParsedSolution]:
        for loc, record in records:
            yield self.parse_record(loc, self.as_object(loc, record))

    def parse_record(self, loc: str, record: dict[str, Any]) -> ParsedSolution:
        raise NotImplementedError

    # -- errors and warnings -----------------------------------------------------
    def error(self, loc: str, field: str | None, message: str) -> ImportValidationError:
        return ImportValidationError(self.file, loc, field, message)

    def warn(self, loc: str, field: str | None, message: str) -> None:
        self.n_warnings += 1
        if len(self.warnings) < MAX_WARNINGS_KEPT:
            self.warnings.append(str(ImportValidationError(self.file, loc, field, message)))

    def as_object(self, loc: str, record: Any) -> dict[str, Any]:
        if not isinstance(record, dict):
            raise self.error(loc, None, f"expected a JSON object, got {type_name(record)}")
        return record

    def claim_id(self, source_id: str, loc: str, field: str) -> str:
        """Solution ids are unique within a file (and so within a dataset)."""
        if source_id in self._seen_ids:
            if not self.derived_ids:
                raise self.error(
                    loc, field, f"duplicate id {show(source_id)}: ids must be unique within a file"
                )
            n = 2
            while f"{source_id}#{n}" in self._seen_ids:
                n += 1
            source_id = f"{source_id}#{n}"
        if len(source_id) > MAX_SOURCE_ID:
            raise self.error(loc, field, f"longer than {MAX_SOURCE_ID} characters")
        self._seen_ids.add(source_id)
        return source_id

    # -- field readers -------------------------------------------------------------
    def text(self, value: Any, loc: str, field: str, *, allow_empty: bool = False) -> str:
        if not isinstance(value, str):
            raise self.error(loc, field, f"expected a string, got {type_name(value)} {show(value)}")
        if not allow_empty and not value.strip():
            raise self.error(loc, field, "must not be empty")
        if "\x00" in value:
            raise self.error(loc, field, "contains a NUL character, which the database cannot store")
        return value

    def get_text(
        self, record: dict[str, Any], key: str, loc: str, *, required: bool = True, field: str = ""
    ) -> str:
        field = field or key
        if key not in record or record[key] is None:
            if required:
                raise self.error(loc, field, "is missing")
            return ""
        return self.text(record[key], loc, field, allow_empty=not required)

    def get_id(self, record: dict[str, Any], key: str, loc: str) -> str:
        value = record.get(key)
        if (
            isinstance(value, bool)
            or not isinstance(value, str | int)
            or (isinstance(value, str) and not value.strip())
        ):
            got = "nothing" if key not in record else f"{type_name(value)} {show(value)}"
            raise self.error(loc, key, f"expected a non-empty string or integer id, got {got}")
        return str(value)

    def get_text_list(self, record: dict[str, Any], key: str, loc: str, *, min_len: int = 1) -> list[str]:
        value = record.get(key)
        if not isinstance(value, list):
            got = "nothing" if key not in record else f"{type_name(value)} {show(value)}"
            raise self.error(loc, key, f"expected a list of strings, got {got}")
        if len(value) < min_len:
            raise self.error(loc, key, f"expected at least {min_len} item(s), got none")
        for i, item in enumerate(value):
            self.text(item, loc, f"{key}[{i}]", allow_empty=True)
        return value

    def get_opt_bool(self, record: dict[str, Any], key: str, loc: str) -> bool | None:
        value = record.get(key)
        if value is not None and not isinstance(value, bool):
            raise self.error(loc, key, f"expected true, false or null, got {show(value)}")
        return value

    def generator(self, record: dict[str, Any], key: str, loc: str) -> str:
        value = self.get_text(record, key, loc, required=False)
        if len(value) > MAX_GENERATOR:
            raise self.error(loc, key, f"longer than {MAX_GENERATOR} characters")
        return value

    def rating_label(self, rating: int | None) -> str:
        """PRM800K-style rating → label; rating 0 follows the recorded `rating0` option."""
        if rating is None:
            return UNLABELLED
        if rating == 1:
            return CORRECT
        if rating == -1:
            return INCORRECT
        return self.options["rating0"]
