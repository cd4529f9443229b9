from __future__ import annotations

from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat

from .models import Dataset, Step


class ImportForm(forms.Form):
    file = forms.FileField(help_text="JSON or JSONL (optionally .gz or .zst) or Parquet, streamed to disk.")
    name = forms.CharField(max_length=200, required=False, help_text="Defaults to the file name.")
    format = forms.ChoiceField(
        choices=[("", "Auto-detect")] + list(Dataset.Format.choices), required=False
    )
    split = forms.CharField(max_length=50, required=False)
    rating0 = forms.ChoiceField(
        label="PRM800K rating 0 means",
        choices=[("correct", "correct"), ("incorrect", "incorrect"), ("neutral", "neutral (kept apart)")],
        initial="correct",
        help_text="Recorded with the dataset; the raw rating is always kept.",
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        limit = settings.IMPORT_MAX_UPLOAD_BYTES
        if upload.size > limit:
            raise forms.ValidationError(
                f"{upload.name} is {filesizeformat(upload.size)}; uploads are limited to "
                f"{filesizeformat(limit)} (IMPORT_MAX_UPLOAD_BYTES). Import larger files with "
                "`manage.py import_dataset`."
            )
        return upload

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if name and Dataset.objects.filter(name=name).exists():
            raise forms.ValidationError("A dataset with this name exists already.")
        return name


class SolutionFilterForm(forms.Form):
    ERROR_CHOICES = [("", "any"), ("error", "has an error"), ("correct", "all correct"), ("unknown", "unknown")]

    error = forms.ChoiceField(choices=ERROR_CHOICES, required=False)
    first_error = forms.IntegerField(required=False, min_value=0, label="first error at step")
    generator = forms.CharField(required=False)
    label = forms.ChoiceField(choices=[("", "any")] + list(Step.Label.choices), required=False,
                              label="has a step labelled")
    q = forms.CharField(required=False, label="search question")
