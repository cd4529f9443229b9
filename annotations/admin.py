from django.contrib import admin
from django.http import HttpRequest

from rprm_web.admin import ReadOnlyAdmin

from .models import Dataset, ErrorType, ImportJob, Problem, Solution, Step, WorkerHeartbeat


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "source_format", "split", "n_solutions", "n_steps", "created_at"]
    list_filter = ["source_format"]
    search_fields = ["name"]
    readonly_fields = ["uuid", "created_at", "import_options", "label_counts"]


@admin.register(ImportJob)
class ImportJobAdmin(ReadOnlyAdmin):
    list_display = ["file_name", "dataset_name", "detected_format", "status", "created_at"]
    list_filter = ["status"]
    readonly_fields = [f.name for f in ImportJob._meta.fields]


@admin.register(ErrorType)
class ErrorTypeAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "dimension", "definition", "archived"]
    list_filter = ["archived"]
    readonly_fields = ["slug"]

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # archived, never deleted: reviews keep their tags


class SourceDataReadOnly:
    """Imported source data is never edited in the admin: it is what the file said."""

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Problem)
class ProblemAdmin(SourceDataReadOnly, admin.ModelAdmin):
    list_display = ["source_id", "dataset"]
    list_filter = ["dataset"]
    search_fields = ["source_id", "question"]
    list_select_related = ["dataset"]


class StepInline(SourceDataReadOnly, admin.TabularInline):
    model = Step
    extra = 0
    can_delete = False
    readonly_fields = ("index", "text", "label", "source_rating")
    fields = readonly_fields


@admin.register(Solution)
class SolutionAdmin(SourceDataReadOnly, admin.ModelAdmin):
    list_display = ["source_id", "dataset", "generator", "first_error_index", "n_steps"]
    list_filter = ["dataset"]
    search_fields = ["source_id"]
    raw_id_fields = ["problem"]
    list_select_related = ["dataset"]
    inlines = [StepInline]


@admin.register(Step)
class StepAdmin(SourceDataReadOnly, admin.ModelAdmin):
    list_display = ["solution", "index", "label", "source_rating"]
    list_filter = ["label"]
    # Source data is never overwritten: corrections are rows of their own.
    readonly_fields = ["solution", "index", "text", "label", "source_rating", "alternatives"]
    raw_id_fields = ["solution"]
    list_select_related = ["solution__dataset"]


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ["hostname", "queues", "pid", "last_seen"]
