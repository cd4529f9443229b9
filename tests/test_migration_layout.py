"""An existing database upgrades to the app layout with `migrate` alone, losing nothing.

The database is taken back to main's migration state before the move (the old leaf
nodes), filled through the historical models of that state, then migrated forward;
every row is found again through today's models.
"""

from __future__ import annotations

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

OLD_LEAVES = [
    ("annotations", "0004_dashboard_summaries"),
    ("inference", "0003_alter_generationrun_kind_alter_modelendpoint_backend"),
    ("training", "0001_initial"),
]


def _fill(apps) -> dict:
    now = timezone.now()
    User = apps.get_model("auth", "User")
    user = User.objects.create(username="old-admin", is_staff=True)
    A = lambda name: apps.get_model("annotations", name)  # noqa: E731
    I = lambda name: apps.get_model("inference", name)  # noqa: E731, E741
    T = lambda name: apps.get_model("training", name)  # noqa: E731
    dataset = A("Dataset").objects.create(name="old", source_format="processbench")
    problem = A("Problem").objects.create(dataset=dataset, source_id="p1", question="1+1?")
    solution = A("Solution").objects.create(dataset=dataset, problem=problem, source_id="s1", first_error_index=-1)
    step = A("Step").objects.create(solution=solution, index=0, text="2", label="correct")
    # The seeded taxonomy is gone after another test's flush: make sure there is one.
    error_type = A("ErrorType").objects.get_or_create(slug="calculation", defaults={"name": "Calculation"})[0]
    job = A("ImportJob").objects.create(dataset=dataset, dataset_name="old", file_path="/f", file_name="f",
                                        status="succeeded")
    template = I("PromptTemplate").objects.create(name="t", version=1, system="s", user_template="{question}",
                                                  content_hash="h")
    endpoint = I("ModelEndpoint").objects.create(name="e", backend="transformers", path_or_url="/m", role="teacher")
    run = I("GenerationRun").objects.create(endpoint=endpoint, template=template, dataset=dataset,
                                            status="succeeded", critiques_done=1)
    critique = I("Critique").objects.create(run=run, step=step, sample_index=0, text="ok", verdict="yes",
                                            strict=True, matches_label=True)
    audit = A("CritiqueAudit").objects.create(critique=critique, suspicion=0.2, computed_at=now)
    item = A("ReviewItem").objects.create(critique=critique, run=run, dataset=dataset, step=step, queue="matched")
    review = A("Review").objects.create(item=item, critique=critique, reviewer=user, decision="sound")
    review.error_types.add(error_type)
    event = A("ReviewEvent").objects.create(kind="review", actor=user, item=item)
    export = A("ExportJob").objects.create(created_by=user, status="succeeded", rows_total=3, rows_done=3)
    refresh = A("DashboardRefresh").objects.create(status="succeeded")
    evaluation = I("EvaluationRun").objects.create(name="ev", benchmark="processbench", source="model",
                                                   endpoint=endpoint, template=template, status="succeeded")
    I("EvaluationDataset").objects.create(run=evaluation, dataset=dataset)
    score = I("SolutionScore").objects.create(run=evaluation, solution=solution, step_scores=[0.9], samples=[[0.9]])
    guidance = I("GuidanceRun").objects.create(kind="best_of_n", dataset=dataset, policy=endpoint, scorer=endpoint,
                                               template=template, status="succeeded")
    version = T("ModelVersion").objects.create(name="v1", kind="base", path="/m")
    training = T("TrainingRun").objects.create(kind="sft", base_version=version, base_model="/m", output_dir="/o",
                                               status="succeeded")
    return {
        "dataset": dataset.id, "problem": problem.id, "solution": solution.id, "step": step.id, "job": job.id,
        "run": run.id, "critique": critique.id, "audit": audit.id, "item": item.id, "review": review.id,
        "error_type": error_type.id, "event": event.id, "export": export.id, "refresh": refresh.id,
        "evaluation": evaluation.id, "score": score.id, "guidance": guidance.id, "version": version.id,
        "training": training.id, "user": user.id,
    }


@pytest.mark.django_db(transaction=True)
def test_an_old_database_upgrades_with_nothing_lost():
    executor = MigrationExecutor(connection)
    new_leaves = executor.loader.graph.leaf_nodes()
    try:
        executor.migrate(OLD_LEAVES)
        old_apps = MigrationExecutor(connection).loader.project_state(OLD_LEAVES).apps
        ids = _fill(old_apps)
        old_review_type = ContentType.objects.get_or_create(app_label="annotations", model="review")[0].id
    finally:  # whatever happens, the other tests need the current schema back
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(new_leaves)

    from annotations.models import Dataset, ImportJob, Problem, Solution, Step
    from dashboards.models import DashboardRefresh
    from evaluation.models import EvaluationRun, GuidanceRun, SolutionScore
    from inference.models import Critique, GenerationRun
    from review.models import CritiqueAudit, Review, ReviewEvent, ReviewItem
    from training.models import ExportJob, ModelVersion, TrainingRun

    assert Dataset.objects.get(id=ids["dataset"]).name == "old"
    assert Problem.objects.filter(id=ids["problem"]).exists() and Solution.objects.filter(id=ids["solution"]).exists()
    assert Step.objects.get(id=ids["step"]).label == "correct"
    job = ImportJob.objects.get(id=ids["job"])
    assert job.status == "succeeded" and job.attempts == 0 and job.is_finished
    run = GenerationRun.objects.get(id=ids["run"])
    assert run.critiques_done == 1 and run.attempts == 0 and run.status == "succeeded"
    assert Critique.objects.get(id=ids["critique"]).verdict == "yes"
    assert CritiqueAudit.objects.get(id=ids["audit"]).critique_id == ids["critique"]
    assert ReviewItem.objects.get(id=ids["item"]).critique_id == ids["critique"]
    review = Review.objects.get(id=ids["review"])
    assert review.decision == "sound" and list(review.error_types.values_list("id", flat=True)) == [ids["error_type"]]
    assert ReviewEvent.objects.get(id=ids["event"]).item_id == ids["item"]
    export = ExportJob.objects.get(id=ids["export"])
    assert export.rows_done == 3 and export.created_by_id == ids["user"] and export.percent == 100
    assert DashboardRefresh.objects.get(id=ids["refresh"]).status == "succeeded"
    evaluation = EvaluationRun.objects.get(id=ids["evaluation"])
    assert list(evaluation.datasets.values_list("id", flat=True)) == [ids["dataset"]]
    assert SolutionScore.objects.get(id=ids["score"]).step_scores == [0.9]
    assert GuidanceRun.objects.get(id=ids["guidance"]).status == "succeeded"
    assert TrainingRun.objects.get(id=ids["training"]).base_version_id == ids["version"]
    assert ModelVersion.objects.get(id=ids["version"]).name == "v1"
    # Permissions and admin history follow the models: the content type moved, not copied.
    moved = ContentType.objects.get(id=old_review_type)
    assert (moved.app_label, moved.model) == ("review", "review")
