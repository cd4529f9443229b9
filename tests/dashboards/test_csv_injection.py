"""CSV formula injection: every dashboard CSV neutralises text cells a spreadsheet would
execute, with hostile names in every place a name reaches a cell (issue 19, item 7)."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from annotations.models import Dataset, ErrorType
from dashboards.summaries import refresh_now
from evaluation.workflow import create_evaluation
from inference.models import ModelEndpoint
from rprm_web.spreadsheet import FORMULA_STARTS, safe_cell
from tests.evaluation.conftest import write_scores

ERROR_TYPE = "+cmd|' /C calc'!A0"
USERNAME = "-2+3"
DATASET = '=HYPERLINK("http://evil.example/","ds")'
MODEL = "@teacher2"

# Every CSV the app writes: (view, its ?csv= tables).
ENDPOINTS = [
    ("dashboards:error_types", ["types", "trend", "confusion", "evaluation"]),
    ("dashboards:compare", ["compare", "trend"]),
    ("dashboards:reviews", ["progress", "reviewers", "pairs", "signals", "backlog"]),
]


def test_it_prefixes_only_text_cells_that_start_a_formula():
    assert [safe_cell(v) for v in ("=1+1", "+1", "-2+3", "@x", "\tx", "\rx", "a=b", "")] == [
        "'=1+1", "'+1", "'-2+3", "'@x", "'\tx", "'\rx", "a=b", "",
    ]  # fmt: skip
    # Numbers stay numbers: -0.5 in a numeric column is a value, not a formula.
    assert [safe_cell(v) for v in (-0.5, -3, None, True)] == [-0.5, -3, None, True]


@pytest.fixture
def hostile(cast, tmp_path):
    ErrorType.objects.filter(slug="calculation").update(name=ERROR_TYPE)
    User.objects.filter(username="reviewer2").update(username=USERNAME)
    Dataset.objects.filter(pk=cast.dataset.pk).update(name=DATASET)
    ModelEndpoint.objects.filter(pk=cast.b.endpoint_id).update(name=MODEL)
    scores = {"a/counterfactual": [0.9, 0.8, 0.9], "b/counterfactual": [0.2, 0.3],
              "c/calculation": [0.9, 0.9, 0.1], "d/deception": [0.6, 0.7]}  # fmt: skip
    create_evaluation(benchmark="prmbench", datasets=[cast.dataset], name="=prm",
                      scores_path=write_scores(tmp_path / "s.jsonl", scores))  # fmt: skip
    refresh_now()
    return cast


def _cells(response) -> list[list[str]]:
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.content.decode())))


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def test_no_csv_cell_a_spreadsheet_would_execute(client, hostile, admin):
    client.force_login(admin)
    compare = {"a": f"dataset:{hostile.dataset.pk}", "b": f"teacher:{hostile.b.endpoint_id}", "basis": "tag"}
    seen: list[str] = []
    for view, tables in ENDPOINTS:
        for table in tables:
            params = {**(compare if view == "dashboards:compare" else {"basis": "tag"}), "csv": table}
            rows = _cells(client.get(reverse(view), params))
            assert rows, (view, table)
            for cell in (c for row in rows for c in row):
                assert not cell.startswith(FORMULA_STARTS) or _is_number(cell), (view, table, cell)
                seen.append(cell)
    # The hostile names did reach cells, as text with the quote in front.
    for name in (ERROR_TYPE, USERNAME, DATASET, MODEL):
        assert "'" + name in seen, name


def test_the_app_writes_csv_only_through_the_one_helper():
    root = Path(__file__).resolve().parents[2]
    apps = (
        "rprm_web",
        "annotations",
        "inference",
        "review",
        "training",
        "evaluation",
        "dashboards",
        "studio",
    )
    offenders = [
        str(path.relative_to(root))
        for app in apps
        for path in (root / app).rglob("*.py")
        if re.search(r"csv\.(writer|DictWriter)\(", path.read_text(encoding="utf-8"))
    ]
    assert offenders == ["rprm_web/spreadsheet.py"]
