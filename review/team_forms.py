"""Forms of the team pages; each returns typed values for review/team.py."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.validators import UnicodeUsernameValidator

from annotations.models import Dataset
from inference.models import GenerationRun
from rprm_web.access import ROLE_WORDS, ROLES

from .team import ItemFilter

ROLE_CHOICES = [(r, f"{r} — {ROLE_WORDS[r]}") for r in ROLES]


class RunChoiceField(forms.ModelChoiceField):  # type: ignore[type-arg]
    def label_from_instance(self, obj: GenerationRun) -> str:
        return f"run #{obj.id} · {obj.get_kind_display()} · dataset {obj.dataset_id}"


class RolesForm(forms.Form):
    roles = forms.MultipleChoiceField(
        choices=ROLE_CHOICES, required=False, widget=forms.CheckboxSelectMultiple
    )

    def clean_roles(self) -> list[str]:
        return list(self.cleaned_data.get("roles") or [])


class MemberForm(RolesForm):
    username = forms.CharField(max_length=150, validators=[UnicodeUsernameValidator()])
    email = forms.EmailField(required=False)
    password = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Leave empty to invite: you get a set-password link to hand over.",
    )

    def clean_username(self) -> str:
        name = str(self.cleaned_data["username"]).strip()
        if User.objects.filter(username__iexact=name).exists():
            raise forms.ValidationError("This user name is taken.")
        return name

    def clean_password(self) -> str | None:
        password = self.cleaned_data.get("password") or None
        if password:
            validate_password(password)
        return password


class AssignForm(forms.Form):
    dataset = forms.ModelChoiceField(Dataset.objects.order_by("name"), required=False, empty_label="—")
    run = RunChoiceField(GenerationRun.objects.order_by("-id"), required=False, empty_label="—")
    target = forms.IntegerField(required=False, min_value=1, help_text="Reviews to make there (optional).")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if bool(data.get("dataset")) == bool(data.get("run")):
            raise forms.ValidationError("Choose a dataset or a run (one of them).")
        return data


class BulkForm(forms.Form):
    ACTIONS = [
        ("release", "Release the leases"),
        ("skip", "Skip (take out of the queues) items nobody decided"),
        ("reopen", "Reopen skipped items"),
        ("reassign", "Reassign a reviewer's assignments (and release what they hold)"),
    ]
    action = forms.ChoiceField(choices=ACTIONS)
    dataset = forms.ModelChoiceField(
        Dataset.objects.order_by("name"), required=False, empty_label="any dataset"
    )
    run = RunChoiceField(GenerationRun.objects.order_by("-id"), required=False, empty_label="any run")
    queue = forms.ChoiceField(
        choices=[
            ("", "any queue"),
            ("matched", "matched"),
            ("disagreed", "disagreed"),
            ("other", "other"),
            ("flagged", "flagged"),
        ],
        required=False,
    )
    reviewer = forms.ModelChoiceField(
        User.objects.filter(is_active=True).order_by("username"),
        required=False,
        empty_label="anyone",
        help_text="Held by (release) or assigned to (reassign).",
    )
    to_reviewer = forms.ModelChoiceField(
        User.objects.filter(is_active=True).order_by("username"),
        required=False,
        empty_label="—",
        label="Reassign to",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("action") == "reassign" and not (data.get("reviewer") and data.get("to_reviewer")):
            raise forms.ValidationError("Reassigning needs both reviewers: from whom, and to whom.")
        return data

    def item_filter(self) -> ItemFilter:
        d = self.cleaned_data
        return ItemFilter(
            dataset_id=d["dataset"].id if d.get("dataset") else None,
            run_id=d["run"].id if d.get("run") else None,
            queue=d.get("queue") or "",
            holder_id=d["reviewer"].id if d.get("reviewer") and d["action"] == "release" else None,
        )
