from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.template.defaultfilters import filesizeformat

from rprm_web.forms import LaunchKeyForm

from .models import Dataset, Step


def too_large(what: str) -> str:
    limit = filesizeformat(settings.IMPORT_MAX_UPLOAD_BYTES)
    return (
        f"{what}; uploads are limited to {limit} (IMPORT_MAX_UPLOAD_BYTES). "
        "Import larger files with `manage.py import_dataset`."
    )


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """One or more files; cleans to a list (Django's documented pattern)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[UploadedFile]:
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(d, initial) for d in data]
        return [single(data, initial)]


class ImportForm(LaunchKeyForm):
    file = MultipleFileField(
        label="File(s)",
        help_text="JSON or JSONL (optionally .gz or .zst) or Parquet, streamed to disk. Several files of one "
        "format (e.g. PRMBench's 16) are imported together as one dataset, all or nothing.",
    )
    name = forms.CharField(
        max_length=200,
        required=False,
        help_text="Defaults to the file name (several: what their names share).",
    )
    format = forms.ChoiceField(choices=[("", "Auto-detect")] + list(Dataset.Format.choices), required=False)
    split = forms.CharField(max_length=50, required=False)
    rating0 = forms.ChoiceField(
        label="PRM800K rating 0 means",
        choices=[("correct", "correct"), ("incorrect", "incorrect"), ("neutral", "neutral (kept apart)")],
        initial="correct",
        help_text="Recorded with the dataset; the raw rating is always kept.",
    )

    def __init__(self, *args: Any, refused_upload: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.refused_upload = refused_upload  # a file UploadSizeLimitHandler dropped mid-stream

    def clean_file(self) -> list[UploadedFile]:
        uploads = self.cleaned_data.get("file") or []
        for upload in uploads:
            if upload.size > settings.IMPORT_MAX_UPLOAD_BYTES:
                raise forms.ValidationError(too_large(f"{upload.name} is {filesizeformat(upload.size)}"))
        names = [upload.name for upload in uploads]
        if len(set(names)) != len(names):
            raise forms.ValidationError("The same file name is given twice.")
        return uploads

    def full_clean(self) -> None:
        super().full_clean()
        if self.refused_upload is not None and self.is_bound:
            self.errors["file"] = self.error_class(
                [
                    too_large(
                        f"{self.refused_upload} is over {filesizeformat(settings.IMPORT_MAX_UPLOAD_BYTES)}"
                    )
                ]
            )
            self.cleaned_data.pop("file", None)

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if name and Dataset.objects.filter(name=name).exists():
            raise forms.ValidationError("A dataset with this name exists already.")
        return name


class SolutionFilterForm(forms.Form):
    ERROR_CHOICES = [
        ("", "any"),
        ("error", "has an error"),
        ("correct", "all correct"),
        ("unknown", "unknown"),
    ]

    error = forms.ChoiceField(choices=ERROR_CHOICES, required=False)
    first_error = forms.IntegerField(required=False, min_value=0, label="first error at step")
    generator = forms.CharField(required=False)
    label = forms.ChoiceField(
        choices=[("", "any")] + list(Step.Label.choices), required=False, label="has a step labelled"
    )
    q = forms.CharField(required=False, label="search question")
