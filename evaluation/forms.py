"""Forms that launch evaluations and guidance runs; they return typed values."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.files.uploadedfile import UploadedFile

from annotations.models import Dataset
from inference.actions import default_endpoint
from inference.core.generation import MAX_K
from inference.core.solution_scoring import DEFAULT_K
from inference.models import ModelEndpoint
from inference.scorers import SCORER_ROLES
from rprm_web.forms import LaunchKeyForm

from .models import EvaluationRun, GuidanceRun
from .workflow import check_datasets, check_scored_steps

MAX_SCORES_FILE_BYTES = 200 * 1024 * 1024


class EvaluationForm(LaunchKeyForm):
    benchmark = forms.ChoiceField(choices=EvaluationRun.Benchmark.choices)
    datasets = forms.ModelMultipleChoiceField(
        queryset=Dataset.objects.filter(source_format__in=EvaluationRun.Benchmark.values).order_by("name"),
        help_text="ProcessBench: one dataset per subset file (its split names the subset).",
    )
    endpoint = forms.ModelChoiceField(
        queryset=ModelEndpoint.objects.filter(role__in=SCORER_ROLES),
        required=False,
        label="Model",
        help_text="A scorer or student model, scored on the gpu worker.",
    )
    scores_file = forms.FileField(
        required=False,
        label="…or external scores (JSONL)",
        help_text='One line per solution: {"id": <source id>, "step_scores": [floats]}.',
    )
    name = forms.CharField(
        max_length=200, required=False, help_text="Row label (default: model or file name)."
    )
    n_samples = forms.IntegerField(
        min_value=1, max_value=MAX_K, initial=DEFAULT_K, label="K (critiques per step)"
    )
    threshold = forms.FloatField(min_value=0, max_value=1, initial=0.5)
    max_new_tokens = forms.IntegerField(min_value=1, max_value=4096, initial=4096)
    solution_limit = forms.IntegerField(
        min_value=1,
        required=False,
        label="Only the first N solutions",
        help_text="Stratified by label (ProcessBench: with / without an error; PRMBench: by class) "
        "and seeded, so both kinds are in: F1 needs correct and wrong solutions.",
    )
    solution_seed = forms.IntegerField(required=False, initial=0, label="Seed for the first N")
    scored_steps = forms.ChoiceField(
        required=False,
        label="Steps to critique",
        choices=[("", "the benchmark's rows (ProcessBench: through the first labelled error; PRMBench: all)")]
        + [(value, label) for value, label in EvaluationRun.ScoredSteps.choices],
        help_text="Steps after the labelled first error cannot change a ProcessBench number. Stopping at the "
        "first predicted error too is exact at this threshold only (no sweep, no K curve).",
    )

    def clean_n_samples(self) -> int:
        return int(self.cleaned_data["n_samples"])

    def clean_solution_seed(self) -> int:
        return int(self.cleaned_data.get("solution_seed") or 0)

    def clean_scored_steps(self) -> str | None:
        return self.cleaned_data.get("scored_steps") or None

    def clean_threshold(self) -> float:
        return float(self.cleaned_data["threshold"])

    def clean_scores_file(self) -> UploadedFile | None:
        f = self.cleaned_data.get("scores_file")
        if f is not None and f.size > MAX_SCORES_FILE_BYTES:
            raise forms.ValidationError(f"file over {MAX_SCORES_FILE_BYTES // (1024 * 1024)} MB")
        return f

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["endpoint"].initial = default_endpoint(ModelEndpoint.Role.SCORER)

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if bool(data.get("endpoint")) == bool(data.get("scores_file")):
            self.add_error(None, "Choose a model or upload a scores file (one of the two).")
        if data.get("benchmark") and data.get("datasets"):
            try:
                check_datasets(data["benchmark"], list(data["datasets"]))
            except ValueError as exc:
                self.add_error("datasets", str(exc))
        if data.get("benchmark"):
            try:
                check_scored_steps(data["benchmark"], data.get("scored_steps"))
            except ValueError as exc:
                self.add_error("scored_steps", str(exc))
        return data


class GuidanceForm(LaunchKeyForm):
    kind = forms.ChoiceField(choices=GuidanceRun.Kind.choices)
    dataset = forms.ModelChoiceField(
        queryset=Dataset.objects.order_by("name"), help_text="Problems with a reference answer are used."
    )
    policy = forms.ModelChoiceField(queryset=ModelEndpoint.objects.all(), help_text="Writes the solutions.")
    scorer = forms.ModelChoiceField(
        queryset=ModelEndpoint.objects.filter(role__in=SCORER_ROLES), help_text="The PRM."
    )
    n_candidates = forms.IntegerField(
        min_value=1, max_value=64, initial=8, label="N (solutions or next steps)"
    )
    n_samples = forms.IntegerField(
        min_value=1, max_value=MAX_K, initial=DEFAULT_K, label="K (critiques per step)"
    )
    max_steps = forms.IntegerField(min_value=1, max_value=100, initial=30)
    problem_limit = forms.IntegerField(min_value=1, required=False, label="Only the first N problems")
    policy_max_new_tokens = forms.IntegerField(
        min_value=1, max_value=8192, initial=1024, help_text="Guided search: per step (512 is plenty)."
    )
    max_new_tokens = forms.IntegerField(
        min_value=1, max_value=4096, initial=4096, label="Critique max tokens"
    )
    seed = forms.IntegerField(required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["scorer"].initial = default_endpoint(ModelEndpoint.Role.SCORER)
