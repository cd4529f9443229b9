from __future__ import annotations

from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat

from rprm_web.forms import LaunchKeyForm

from .models import Dataset, Step


def too_large(what: str) -> str:
    limit = filesizeformat(settings.IMPORT_MAX_UPLOAD_BYTES)
    return (
        f"{what}; uploads are limited to {limit} (IMPORT_MAX_UPLOAD_BYTES). "
        "Import larger files with `manage.py import_dataset`."
    )


class ImportForm(LaunchKeyForm):
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

    def __init__(self, *args, refused_upload: str | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.refused_upload = refused_upload  # a file UploadSizeLimitHandler dropped mid-stream

    def clean_file(self):
        upload = self.cleaned_data.get("file")
        if upload is not None and upload.size > settings.IMPORT_MAX_UPLOAD_BYTES:
            raise forms.ValidationError(too_large(f"{upload.name} is {filesizeformat(upload.size)}"))
        return upload

    def full_clean(self) -> None:
        super().full_clean()
        if self.refused_upload is not None and self.is_bound:
            self.errors["file"] = self.error_class(
                [too_large(f"{self.refused_upload} is over {filesizeformat(settings.IMPORT_MAX_UPLOAD_BYTES)}")]
            )
            self.cleaned_data.pop("file", None)

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
