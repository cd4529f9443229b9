"""Issue 13: every malformed scoring request is a JSON 4xx naming the field, never a 500.

Bodies go through the real view (test client), and through `parse_score_request`
with a raw WSGI stream for a chunked body (the test client always sends a length).
"""

from __future__ import annotations

import io
import json

import pytest
from django.test import RequestFactory

from inference.api_request import ApiError, ScoreRequest, parse_score_request
from inference.scorers import create_api_token
from tests.evaluation.test_api import BODY, URL, error, post


@pytest.fixture
def token(reviewer):
    return create_api_token(reviewer, "tests")[1]


def body_with(**raw: str) -> str:
    """BODY as JSON text with some fields replaced by raw JSON text."""
    text = json.dumps({**BODY, **{k: f"@{k}" for k in raw}})
    for k, value in raw.items():
        text = text.replace(f'"@{k}"', value)
    return text


MALFORMED = [
    ("deep-nesting", body_with(question="[" * 100_000 + "]" * 100_000), "question",
     "question: nested deeper than 8 levels"),
    ("huge-integer", body_with(K="9" * 10_000), "K",
     "K: an integer with 10,000 digits (the limit is 12)"),
    ("seed-overflow", body_with(seed=str(2**36)), "seed", "seed must be between 0 and 4294967295"),
    ("nan", body_with(K="NaN"), "K", "K: NaN is not a number JSON allows"),
    ("infinity", body_with(seed="1e999"), "seed", "seed: the number 1e999 is out of range (not finite)"),
    ("lone-surrogate", body_with(question='"why \\ud800"'), "question",
     "question: contains a lone surrogate \\ud800, which is not valid Unicode"),
    ("surrogate-in-step", body_with(steps='["fine", "bad \\udfff"]'), "steps[1]",
     "steps[1]: contains a lone surrogate \\udfff, which is not valid Unicode"),
    ("not-json", "{not json", "body", "body is not valid JSON: Expecting property name enclosed in double quotes"),
    ("empty", "", "body", "the body is empty; send a JSON object"),
    ("array", "[1, 2]", "body", "body must be a JSON object"),
    ("steps-wrong-type", body_with(steps='"one step"'), "steps", "steps must be a non-empty list of strings"),
    ("step-object", body_with(steps='[{"text": "x"}]'), "steps[0]", "steps[0] must be a non-empty string"),
    ("K-float", body_with(K="4.0"), "K", "K must be an integer"),
    ("K-bool", body_with(K="true"), "K", "K must be an integer"),
    ("question-number", body_with(question="5"), "question", "question must be a non-empty string"),
    ("template-list", body_with(template="[]"), "template", "template must be 'name' or 'name@version'"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("case", "raw", "field", "message"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_a_malformed_body_is_a_json_400_naming_the_field(client, token, case, raw, field, message):
    response = post(client, None, token=token, raw=raw)
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/json"
    err = error(response)
    assert err["field"] == field and err["message"].startswith(message), err
    assert "Error" not in err["message"] and "Traceback" not in err["message"]


@pytest.mark.django_db
def test_invalid_utf8_is_named_by_field(client, token):
    raw = body_with(question='"caf@"').encode().replace(b"caf@", b"caf\xff")
    response = post(client, None, token=token, raw=raw)
    assert response.status_code == 400
    assert error(response) == {
        "code": "bad_json", "field": "question", "message": "question: is not valid UTF-8 (byte 0xff)"}  # fmt: skip


def chunked_request(payload: bytes):
    request = RequestFactory().generic(
        "POST", URL, b"", content_type="application/json", HTTP_TRANSFER_ENCODING="chunked"
    )
    request.META.pop("CONTENT_LENGTH", None)
    request.META["wsgi.input"] = io.BytesIO(payload)
    return request


def test_a_chunked_10_mb_body_is_too_large_not_invalid_json(settings):
    settings.SCORING_API_MAX_BODY_BYTES = 256 * 1024  # the default
    payload = json.dumps({**BODY, "question": "x" * (10 << 20)}).encode()
    with pytest.raises(ApiError) as exc:
        parse_score_request(chunked_request(payload))
    assert (exc.value.status, exc.value.code) == (413, "too_large")
    assert exc.value.message == "request body over 262144 bytes"


def test_a_small_chunked_body_is_read_and_parsed():
    parsed = parse_score_request(chunked_request(json.dumps({**BODY, "seed": 7}).encode()))
    assert parsed == ScoreRequest(
        question=BODY["question"], steps=BODY["steps"], model=BODY["model"], template=None, n_samples=2, seed=7,
        max_new_tokens=None,
    )  # fmt: skip
