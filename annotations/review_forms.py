"""Forms of the review screens; each returns typed values for the actions."""

from __future__ import annotations

from django import forms

from inference.models import GenerationRun

from .models import Dataset, ErrorType, Review, Step
from .reviews import QueueFilter


class QueueFilterForm(forms.Form):
    queue = forms.ChoiceField(
        choices=[
            ("matched", "Matched the label"),
            ("disagreed", "Disagreed with the label"),
            ("flagged", "Flagged by signals"),
        ],
        required=False,
    )
    dataset = forms.ModelChoiceField(
        Dataset.objects.order_by("name"), required=False, empty_label="All datasets"
    )
    run = forms.ModelChoiceField(
        GenerationRun.objects.order_by("-id"), required=False, empty_label="All runs"
    )
    error_type = forms.ModelChoiceField(ErrorType.objects.all(), required=False, empty_label="Any error type")
    q = forms.CharField(required=False, max_length=200, label="Search")
    text = forms.ChoiceField(
        choices=[("", "Any"), ("repaired", "Text repaired"), ("truncated", "Truncated")], required=False
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["run"].label_from_instance = lambda r: f"#{r.id} {r.get_kind_display()} · {r.dataset_id}"

    def queue_filter(self) -> QueueFilter:
        """The filter for valid data; the default queue when the form is invalid."""
        if not self.is_valid():
            return QueueFilter()
        d = self.cleaned_data
        return QueueFilter(
            queue=d["queue"] or "matched",
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


class ExportForm(forms.Form):
    sft = forms.BooleanField(required=False, initial=True, label="SFT rows (prompt-completion)")
    dpo = forms.BooleanField(required=False, initial=True, label="DPO pairs (prompt/chosen/rejected)")
    datasets = forms.ModelMultipleChoiceField(Dataset.objects.order_by("name"), required=False)
    runs = forms.ModelMultipleChoiceField(GenerationRun.objects.order_by("-id"), required=False)
    error_types = forms.ModelMultipleChoiceField(ErrorType.objects.active(), required=False)
    require_review = forms.BooleanField(required=False, label="Only critiques reviewed as sound")
    balance = forms.BooleanField(required=False, initial=True, label="Balance yes/no 1:1")
    val_fraction = forms.FloatField(
        initial=0.05, min_value=0, max_value=0.5, label="Validation share (by problem)"
    )
    dpo_pairs_per_step = forms.IntegerField(initial=2, min_value=1, max_value=50, label="DPO pairs per step")
    seed = forms.IntegerField(initial=0)

    def clean(self):
        data = super().clean()
        if not data.get("sft") and not data.get("dpo"):
            raise forms.ValidationError("Choose SFT, DPO or both.")
        return data

    def clean_val_fraction(self) -> float:
        return float(self.cleaned_data["val_fraction"])

    def filters(self) -> dict:
        d = self.cleaned_data
        return {
            "kinds": [k for k in ("sft", "dpo") if d.get(k)],
            "datasets": [x.id for x in d["datasets"]],
            "runs": [x.id for x in d["runs"]],
            "error_types": [x.slug for x in d["error_types"]],
            "require_review": bool(d.get("require_review")),
            "balance": bool(d.get("balance")),
            "val_fraction": d["val_fraction"],
            "dpo_pairs_per_step": d["dpo_pairs_per_step"],
            "seed": d["seed"],
        }
