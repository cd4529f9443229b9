"""Forms of the review screens; each returns typed values for the actions."""

from __future__ import annotations

from django import forms

from annotations.models import Dataset, ErrorType, Step
from inference.models import GenerationRun

from .models import Review
from .queue import QueueFilter


class _RunField(forms.ModelChoiceField):
    def label_from_instance(self, obj: GenerationRun) -> str:
        return f"#{obj.id} {obj.get_kind_display()} · {obj.dataset_id}"


QUEUE_CHOICES = [
    ("matched", "Matched the label"),
    ("disagreed", "Disagreed with the label"),
    ("flagged", "Flagged by signals"),
]


class QueueFilterForm(forms.Form):
    queue = forms.ChoiceField(
        choices=QUEUE_CHOICES,
        required=False,
    )
    role = forms.ChoiceField(
        choices=[("teacher", "Teacher critiques"), ("student", "Student samples"), ("all", "All critiques")],
        required=False,
        label="Critiques",
    )
    dataset = forms.ModelChoiceField(
        Dataset.objects.order_by("name"), required=False, empty_label="All datasets"
    )
    run = _RunField(GenerationRun.objects.order_by("-id"), required=False, empty_label="All runs")
    error_type = forms.ModelChoiceField(ErrorType.objects.all(), required=False, empty_label="Any error type")
    q = forms.CharField(required=False, max_length=200, label="Search")
    text = forms.ChoiceField(
        choices=[("", "Any"), ("repaired", "Text repaired"), ("truncated", "Truncated")], required=False
    )

    def queue_filter(self) -> QueueFilter:
        """The filter for valid data; the default queue when the form is invalid."""
        if not self.is_valid():
            return QueueFilter()
        d = self.cleaned_data
        return QueueFilter(
            queue=d["queue"] or "matched",
            role=d["role"] or "teacher",
            dataset_id=d["dataset"].id if d["dataset"] else None,
            run_id=d["run"].id if d["run"] else None,
            error_type_id=d["error_type"].id if d["error_type"] else None,
            search=(d["q"] or "").strip(),
            model_text=d["text"] or "",
        )


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=Review.Decision.choices)
    error_types = forms.ModelMultipleChoiceField(
        ErrorType.objects.active(), required=False, widget=forms.CheckboxSelectMultiple
    )
    note = forms.CharField(required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 2}))
    time_on_task_ms = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)
    proposed_label = forms.ChoiceField(
        choices=[("", "the other label")]
        + [(v, v) for v in (Step.Label.CORRECT, Step.Label.INCORRECT, Step.Label.NEUTRAL)],
        required=False,
    )

    def clean_time_on_task_ms(self) -> int | None:
        return self.cleaned_data.get("time_on_task_ms")

    def clean_error_types(self) -> list[ErrorType]:
        return list(self.cleaned_data.get("error_types") or [])


class AdjudicationForm(forms.Form):
    decision = forms.ChoiceField(
        choices=[c for c in Review.Decision.choices if c[0] != Review.Decision.SKIP], widget=forms.RadioSelect
    )
    error_types = forms.ModelMultipleChoiceField(
        ErrorType.objects.active(), required=False, widget=forms.CheckboxSelectMultiple
    )
    note = forms.CharField(required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 2}))

    def clean_error_types(self) -> list[ErrorType]:
        return list(self.cleaned_data.get("error_types") or [])
