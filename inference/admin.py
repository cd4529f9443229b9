from __future__ import annotations

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from rprm_web.admin import ReadOnlyAdmin

from .models import Critique, GenerationRun, ModelEndpoint, PromptTemplate


@admin.register(PromptTemplate)
class PromptTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "version", "chat", "content_hash", "created_at"]
    readonly_fields = ["content_hash", "created_at"]

    def get_readonly_fields(
        self, request: HttpRequest, obj: PromptTemplate | None = None
    ) -> list[str] | tuple[str, ...]:
        # A template that produced critiques is provenance: it can no longer change.
        if obj and obj.runs.exists():
            return [f.name for f in PromptTemplate._meta.fields]
        return self.readonly_fields


class ModelEndpointForm(forms.ModelForm):
    # Write-only: the stored key is encrypted and never rendered back.
    api_key = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave empty to keep the stored key. Stored encrypted; never shown again.",
    )
    clear_api_key = forms.BooleanField(required=False, label="Remove the stored key")

    class Meta:
        model = ModelEndpoint
        fields = [
            "name",
            "role",
            "backend",
            "path_or_url",
            "served_model_name",
            "default_sampling",
            "options",
        ]

    def save(self, commit: bool = True) -> ModelEndpoint:
        endpoint = super().save(commit=False)
        if self.cleaned_data.get("clear_api_key"):
            endpoint.api_key_encrypted = ""
        elif self.cleaned_data.get("api_key"):
            endpoint.set_api_key(self.cleaned_data["api_key"])
        if commit:
            endpoint.save()
        return endpoint


@admin.register(ModelEndpoint)
class ModelEndpointAdmin(admin.ModelAdmin):
    form = ModelEndpointForm
    list_display = ["name", "role", "backend", "path_or_url", "has_api_key"]
    list_filter = ["role", "backend"]

    @admin.display(boolean=True, description="API key")
    def has_api_key(self, obj: ModelEndpoint) -> bool:
        return obj.has_api_key


@admin.register(GenerationRun)
class GenerationRunAdmin(ReadOnlyAdmin):
    list_display = ["id", "kind", "dataset", "endpoint", "status", "steps_done", "steps_total", "created_at"]
    list_filter = ["status", "kind"]
    readonly_fields = [
        "uuid",
        "summary",
        "error",
        "error_detail",
        "started_at",
        "finished_at",
        "heartbeat_at",
        "worker",
    ]


@admin.register(Critique)
class CritiqueAdmin(ReadOnlyAdmin):
    list_display = ["id", "run", "step", "sample_index", "verdict", "strict", "p_yes", "matches_label"]
    list_filter = ["verdict", "strict", "matches_label"]
    raw_id_fields = ["run", "step"]
    readonly_fields = ["uuid", "text", "sections", "verdict", "strict", "p_yes", "matches_label"]
