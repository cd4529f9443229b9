from django.contrib import admin

from .models import Critique, GenerationRun, ModelEndpoint, PromptTemplate


@admin.register(PromptTemplate)
class PromptTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "version", "chat", "content_hash", "created_at"]
    readonly_fields = ["content_hash", "created_at"]

    def get_readonly_fields(self, request, obj=None):
        # A template that produced critiques is provenance: it can no longer change.
        if obj and obj.runs.exists():
            return [f.name for f in PromptTemplate._meta.fields]
        return self.readonly_fields


@admin.register(ModelEndpoint)
class ModelEndpointAdmin(admin.ModelAdmin):
    list_display = ["name", "role", "backend", "path_or_url"]
    list_filter = ["role", "backend"]


@admin.register(GenerationRun)
class GenerationRunAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "dataset", "endpoint", "status", "steps_done", "steps_total", "created_at"]
    list_filter = ["status", "kind"]
    readonly_fields = ["uuid", "summary", "error", "started_at", "finished_at", "heartbeat_at", "worker"]


@admin.register(Critique)
class CritiqueAdmin(admin.ModelAdmin):
    list_display = ["id", "run", "step", "sample_index", "verdict", "strict", "p_yes", "matches_label"]
    list_filter = ["verdict", "strict", "matches_label"]
    raw_id_fields = ["run", "step"]
    readonly_fields = ["uuid", "text", "sections", "verdict", "strict", "p_yes", "matches_label"]
