from __future__ import annotations

from typing import Any

from django import forms

from annotations.models import Dataset, Step
from inference.core.generation import TEACHER
from rprm_web.forms import LaunchKeyForm

from .actions import default_endpoint, guess_backend
from .models import ModelEndpoint, PromptTemplate
from .trust import EndpointRejected, check_endpoint


class RunForm(LaunchKeyForm):
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.all())
    endpoint = forms.ModelChoiceField(
        queryset=ModelEndpoint.objects.exclude(backend=ModelEndpoint.Backend.RECORDED),
        required=False,
        label="Model",
        help_text="A registered endpoint, or fill in a new one below.",
    )
    new_model = forms.CharField(required=False, label="…or a model path / hub id / server URL")
    new_backend = forms.ChoiceField(
        choices=[c for c in ModelEndpoint.Backend.choices if c[0] != ModelEndpoint.Backend.RECORDED],
        required=False,
        label="Backend",
    )
    template = forms.ModelChoiceField(
        queryset=PromptTemplate.objects.all(), required=False, help_text="Empty: the built-in R-PRM template."
    )
    labels = forms.MultipleChoiceField(
        choices=Step.Label.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Empty: every step.",
    )
    up_to_first_error = forms.BooleanField(
        required=False,
        initial=True,
        help_text="Skip steps after a solution's first error (they carry no label).",
    )
    limit = forms.IntegerField(required=False, min_value=1, help_text="At most this many steps.")
    n_samples = forms.IntegerField(
        min_value=1, max_value=64, initial=TEACHER.n_samples, label="K (critiques per step)"
    )
    temperature = forms.FloatField(min_value=0, max_value=2, initial=0.4)
    top_p = forms.FloatField(min_value=0.01, max_value=1, initial=0.95)
    max_new_tokens = forms.IntegerField(min_value=16, max_value=32768, initial=8192)
    batch_size = forms.IntegerField(
        min_value=1, max_value=256, initial=8, help_text="Steps per backend call."
    )
    seed = forms.IntegerField(required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["endpoint"].initial = default_endpoint(ModelEndpoint.Role.TEACHER)

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if not data.get("endpoint") and not data.get("new_model"):
            raise forms.ValidationError("Pick a registered model or give a model path / URL.")
        new_model = data.get("new_model")
        if (
            not data.get("endpoint")
            and new_model
            and not ModelEndpoint.objects.filter(name=new_model).exists()
        ):
            try:  # the same check endpoint_for makes, shown on the form
                check_endpoint(data.get("new_backend") or guess_backend(new_model), new_model, {})
            except EndpointRejected as exc:
                self.add_error("new_model", str(exc))
        return data

    def clean_temperature(self) -> float:
        return float(self.cleaned_data["temperature"])

    def step_filter(self) -> dict:
        data = self.cleaned_data
        f: dict = {}
        if data["labels"]:
            f["labels"] = list(data["labels"])
        if data["up_to_first_error"]:
            f["up_to_first_error"] = True
        if data["limit"]:
            f["limit"] = data["limit"]
        return f
