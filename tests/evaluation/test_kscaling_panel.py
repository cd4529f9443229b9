"""The K-scaling panel offers every run with K > 1, grouped by family (name and benchmark),
not only the latest: the results page shows the one picked (`?kscaling=<uuid>`)."""

from __future__ import annotations

from django.urls import reverse

from evaluation.models import EvaluationRun
from evaluation.workflow import create_evaluation, process_evaluation
from inference.models import ModelEndpoint
from rprm_web import runs
from tests.evaluation.conftest import ScriptedScorer
from tests.evaluation.test_evaluation_processbench import p_of


def _evaluated(pb_datasets, name: str, k: int) -> EvaluationRun:
    endpoint, _ = ModelEndpoint.objects.get_or_create(
        name="scripted", defaults={"role": "scorer", "backend": "transformers", "path_or_url": "x"}
    )
    run = create_evaluation(benchmark="processbench", datasets=pb_datasets, endpoint=endpoint, n_samples=k,
                            name=name, queue=False)  # fmt: skip
    process_evaluation(run.id, backend=ScriptedScorer(p_of))
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    return run


def test_it_offers_every_run_of_the_family_and_shows_the_one_picked(client, reviewer, pb_datasets):
    older, newer = _evaluated(pb_datasets, "ours", 4), _evaluated(pb_datasets, "ours", 2)
    other = _evaluated(pb_datasets, "theirs", 4)
    single = _evaluated(pb_datasets, "ours", 1)  # K = 1: nothing to subsample
    client.force_login(reviewer)
    page = client.get(reverse("evaluation:results")).content.decode()
    for run in (older, newer, other):
        assert f'value="{run.uuid}"' in page
    assert f'value="{single.uuid}"' not in page
    assert 'optgroup label="ours · ProcessBench"' in page and 'optgroup label="theirs · ProcessBench"' in page
    # The latest by default, the picked one on request.
    assert f'value="{other.uuid}" selected' in page
    picked = client.get(reverse("evaluation:results"), {"kscaling": str(older.uuid)}).content.decode()
    assert f'value="{older.uuid}" selected' in picked
    assert (
        reverse("evaluation:run_detail", args=[older.uuid])
        in picked.split('id="kscaling"')[1].split("</section>")[0]
    )
    # A run page offers its own family only; an archived run is no longer offered.
    own = client.get(reverse("evaluation:run_detail", args=[older.uuid])).content.decode()
    assert f'value="{newer.uuid}"' in own and f'value="{other.uuid}"' not in own
    runs.set_archived(EvaluationRun, newer.id)
    assert f'value="{newer.uuid}"' not in client.get(reverse("evaluation:results")).content.decode()
