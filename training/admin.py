from django.contrib import admin

from rprm_web.admin import ReadOnlyAdmin

from .models import ModelVersion, PreferencePair, TrainingMetric, TrainingRun


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "parent", "training_run", "template", "created_at"]
    list_filter = ["kind"]
    raw_id_fields = ["parent", "training_run", "template", "student_endpoint", "scorer_endpoint"]
    # Lineage and data are provenance: edited only through actions, never by hand.
    readonly_fields = [
        "uuid",
        "kind",
        "path",
        "parent",
        "base_model",
        "training_run",
        "template",
        "data_manifest",
        "metrics",
        "created_at",
    ]


class TrainingMetricInline(admin.TabularInline):
    model = TrainingMetric
    extra = 0
    can_delete = False
    readonly_fields = ["step", "loss", "eval_loss", "learning_rate", "grad_norm", "epoch", "extra"]


@admin.register(TrainingRun)
class TrainingRunAdmin(ReadOnlyAdmin):
    list_display = ["id", "kind", "name", "base_model", "status", "step", "max_steps", "created_at"]
    list_filter = ["kind", "status"]
    raw_id_fields = ["base_version", "template"]
    readonly_fields = [
        "uuid",
        "data_counts",
        "data_manifest",
        "result",
        "log_tail",
        "error",
        "output_dir",
        "last_checkpoint",
        "worker",
        "heartbeat_at",
        "started_at",
        "finished_at",
    ]
    inlines = [TrainingMetricInline]


@admin.register(PreferencePair)
class PreferencePairAdmin(admin.ModelAdmin):
    list_display = ["id", "run", "step", "chosen", "rejected", "rank"]
    raw_id_fields = ["run", "step", "chosen", "rejected"]
