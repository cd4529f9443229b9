"""Benchmark evaluations (ProcessBench, PRMBench), per-solution scores and
Best-of-N / guided-search runs.

Moved from inference (tables keep their names: `inference_*`)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse

from annotations.models import Dataset, Problem, Solution
from inference.core.backends.base import Sampling
from inference.core.generation import EVALUATION
from inference.models import ModelEndpoint, PromptTemplate
from rprm_web.runs import RunBase, RunStatus


class EvaluationRun(RunBase):
    """A scorer (a model endpoint, or an imported file of external step scores) on a
    benchmark: ProcessBench (one or more subset datasets) or PRMBench."""

    class Benchmark(models.TextChoices):
        PROCESSBENCH = "processbench", "ProcessBench"
        PRMBENCH = "prmbench", "PRMBench"

    class Source(models.TextChoices):
        MODEL = "model", "model endpoint"
        EXTERNAL = "external", "external scores file"

    class ScoredSteps(models.TextChoices):
        # ProcessBench's numbers depend only on the steps through the labelled first error
        # (at any threshold), so by default nothing after it is critiqued: the authors' rows.
        ALL = "all", "every step"
        FIRST_ERROR = "first_error", "through the first labelled error"
        # Beyond the authors: exact only at the run's threshold (no sweep, no K curve).
        PREDICTED_ERROR = "predicted_error", "through the first labelled or predicted error"

    Status = RunStatus
    ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)

    PROGRESS = ("solutions_done", "solutions_total")  # percent = done / total (RunBase)
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=200, help_text="Row label on the results page.")
    benchmark = models.CharField(max_length=12, choices=Benchmark.choices)
    source = models.CharField(max_length=8, choices=Source.choices)
    datasets = models.ManyToManyField(Dataset, through="EvaluationDataset", related_name="evaluation_runs")
    endpoint = models.ForeignKey(ModelEndpoint, null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="evaluation_runs")
    template = models.ForeignKey(PromptTemplate, null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="evaluation_runs")
    scores_file = models.CharField(max_length=255, blank=True, help_text="External scores: the file's name.")
    scores_sha256 = models.CharField(max_length=64, blank=True)
    n_samples = models.PositiveSmallIntegerField(default=EVALUATION.n_samples, help_text="K critiques per step.")
    temperature = models.FloatField(default=EVALUATION.temperature)
    top_p = models.FloatField(default=EVALUATION.top_p)
    max_new_tokens = models.PositiveIntegerField(default=EVALUATION.max_new_tokens)
    seed = models.IntegerField(null=True, blank=True)
    batch_size = models.PositiveSmallIntegerField(default=4, help_text="Solutions per backend call.")
    solution_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Score only the first N.")
    # The stratified, seeded first N (evaluation.selection.Selection); empty: every solution.
    selection = models.JSONField(default=dict, blank=True)
    scored_steps = models.CharField(max_length=16, choices=ScoredSteps.choices, default=ScoredSteps.ALL)
    threshold = models.FloatField(default=0.5)

    solutions_total = models.PositiveIntegerField(default=0)
    solutions_done = models.PositiveIntegerField(default=0)
    steps_done = models.PositiveIntegerField(default=0)
    tokens_generated = models.BigIntegerField(default=0)
    backend_seconds = models.FloatField(default=0)
    # Metrics at the threshold, threshold sweep, K-scaling, contamination (evaluation.results.EvaluationResults).
    results = models.JSONField(default=dict, blank=True)
    error_detail = models.TextField(blank=True)  # staff only: traceback and upstream body, truncated
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "inference_evaluationrun"
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(n_samples__gte=1) & Q(n_samples__lte=64),
                                   name="evaluationrun_n_samples_range"),
            models.CheckConstraint(condition=Q(threshold__gte=0) & Q(threshold__lte=1),
                                   name="evaluationrun_threshold_range"),
            models.CheckConstraint(condition=Q(top_p__gt=0) & Q(top_p__lte=1), name="evaluationrun_top_p_range"),
            models.CheckConstraint(condition=Q(temperature__gte=0), name="evaluationrun_temperature_nonneg"),
            # A model run names its endpoint; an external run names its file.
            models.CheckConstraint(
                condition=Q(source="model", endpoint__isnull=False)
                | Q(source="external", endpoint__isnull=True) & ~Q(scores_file=""),
                name="evaluationrun_source_fields"),
        ]
        indexes = [
            # Results page: latest finished run per (name, benchmark).
            models.Index(fields=["benchmark", "status", "-created_at"], name="evalrun_bench_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_benchmark_display()} evaluation #{self.pk} of {self.name}"

    def get_absolute_url(self) -> str:
        return reverse("evaluation:run_detail", args=[self.uuid])

    @classmethod
    def retry_where(cls) -> Q:
        # External scores are computed at creation: no task to run again.
        return Q(source=cls.Source.MODEL)

    @property
    def can_retry(self) -> bool:
        return super().can_retry and self.source == self.Source.MODEL

    def sampling(self) -> Sampling:
        return Sampling(temperature=self.temperature, top_p=self.top_p, max_new_tokens=self.max_new_tokens,
                        seed=self.seed)

    @property
    def headline(self) -> float | None:
        """ProcessBench avg F1 or PRMBench overall PRMScore, both in percent."""
        return (self.results or {}).get("headline", {}).get("value")


class EvaluationDataset(models.Model):
    """The datasets an evaluation covers (ProcessBench: one per subset file)."""

    run = models.ForeignKey(EvaluationRun, on_delete=models.CASCADE, related_name="+")
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="+")

    class Meta:
        db_table = "inference_evaluationdataset"
        constraints = [
            models.UniqueConstraint(fields=["run", "dataset"], name="evaluationdataset_unique"),
        ]

    def __str__(self) -> str:
        return f"dataset {self.dataset_id} in evaluation {self.run_id}"


class SolutionScore(models.Model):
    """One solution's step scores in one evaluation, with every sample kept.

    `samples[j]` holds the p_yes of each of the K critiques of step j (external
    scores: one value per step), so K-scaling and threshold sweeps re-use them.
    """

    run = models.ForeignKey(EvaluationRun, on_delete=models.CASCADE, related_name="solution_scores")
    solution = models.ForeignKey(Solution, on_delete=models.PROTECT, related_name="+")
    step_scores = models.JSONField(default=list)  # per step: mean p_yes (or the external score)
    samples = models.JSONField(default=list)  # per step: [p_yes of each critique]
    verdicts = models.JSONField(default=list, blank=True)  # per step: [verdict of each critique]
    # Mean |target - score| over the labelled steps (target 1 correct, 0 incorrect):
    # how badly the scorer judged this solution; "worst-scored examples" sort by it.
    loss = models.FloatField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "inference_solutionscore"
        ordering = ["run_id", "solution_id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "solution"], name="solutionscore_unique_per_run"),
        ]
        indexes = [
            # Worst-scored examples of a run.
            models.Index(fields=["run", "-loss"], name="solutionscore_run_loss_idx"),
        ]

    def __str__(self) -> str:
        return f"scores of solution {self.solution_id} in evaluation {self.run_id}"


class GuidanceRun(RunBase):
    """A policy guided by a PRM: Best-of-N selection or greedy step-level search."""

    class Kind(models.TextChoices):
        BEST_OF_N = "best_of_n", "Best-of-N"
        GUIDED_SEARCH = "guided_search", "guided search"

    Status = RunStatus
    ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)

    PROGRESS = ("problems_done", "problems_total")  # percent = done / total (RunBase)
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(max_length=14, choices=Kind.choices)
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="guidance_runs")
    policy = models.ForeignKey(ModelEndpoint, on_delete=models.PROTECT, related_name="policy_runs")
    scorer = models.ForeignKey(ModelEndpoint, on_delete=models.PROTECT, related_name="guided_runs")
    template = models.ForeignKey(PromptTemplate, on_delete=models.PROTECT, related_name="guidance_runs")
    n_candidates = models.PositiveSmallIntegerField(default=8, help_text="N solutions, or N next steps.")
    n_samples = models.PositiveSmallIntegerField(default=EVALUATION.n_samples, help_text="K critiques per step.")
    max_steps = models.PositiveSmallIntegerField(default=30)
    problem_limit = models.PositiveIntegerField(null=True, blank=True)
    policy_temperature = models.FloatField(default=0.7)
    policy_top_p = models.FloatField(default=0.95)
    policy_max_new_tokens = models.PositiveIntegerField(default=1024)
    temperature = models.FloatField(default=EVALUATION.temperature)
    top_p = models.FloatField(default=EVALUATION.top_p)
    max_new_tokens = models.PositiveIntegerField(default=EVALUATION.max_new_tokens)
    seed = models.IntegerField(null=True, blank=True)

    problems_total = models.PositiveIntegerField(default=0)
    problems_done = models.PositiveIntegerField(default=0)
    results = models.JSONField(default=dict, blank=True)
    error_detail = models.TextField(blank=True)  # staff only: traceback and upstream body, truncated
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "inference_guidancerun"
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(n_candidates__gte=1), name="guidancerun_n_candidates_positive"),
            models.CheckConstraint(condition=Q(n_samples__gte=1), name="guidancerun_n_samples_positive"),
            models.CheckConstraint(condition=Q(max_steps__gte=1), name="guidancerun_max_steps_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} run #{self.pk} on {self.dataset}"

    def get_absolute_url(self) -> str:
        return reverse("evaluation:guidance_detail", args=[self.uuid])


class GuidanceResult(models.Model):
    """One problem of a guidance run: candidates, their step rewards, the picks."""

    run = models.ForeignKey(GuidanceRun, on_delete=models.CASCADE, related_name="problem_results")
    problem = models.ForeignKey(Problem, on_delete=models.PROTECT, related_name="+")
    reference_answer = models.TextField(blank=True)
    # Best-of-N: [{"text", "steps", "step_scores", "answer", "correct"}];
    # guided search: [{"candidates", "scores", "chosen"}] per search step.
    candidates = models.JSONField(default=list)
    # Per selection rule ("min", "last" / "guided"): {"index"?, "answer", "correct"}.
    selections = models.JSONField(default=dict)
    solution = models.TextField(blank=True, help_text="Guided search: the solution it built.")
    stop_reason = models.CharField(max_length=20, blank=True)
    # Policy text had characters PostgreSQL cannot hold (NUL, lone surrogates): now U+FFFD.
    text_repaired = models.BooleanField(default=False)
    completion_tokens = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "inference_guidanceresult"
        ordering = ["run_id", "problem_id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "problem"], name="guidanceresult_unique_per_run"),
        ]

    def __str__(self) -> str:
        return f"problem {self.problem_id} in guidance run {self.run_id}"
