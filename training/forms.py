"""Launch forms (defaults from the R-PRM paper, all editable) and registry forms."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms
from django.db.models import QuerySet

from annotations.models import Dataset
from inference.core.generation import STUDENT
from inference.models import GenerationRun
from rprm_web.forms import LaunchKeyForm
from training.core.runner import DEFAULT_LEARNING_RATE

from .actions import STUDENT_STEP_FILTER
from .models import ExportJob, ModelVersion, TrainingRun

BF16_CHOICES = [("auto", "auto (on where the GPU supports it)"), ("on", "on"), ("off", "off")]


class LaunchForm(LaunchKeyForm):
    """Fields both kinds share: the base model and the TrainConfig hyperparameters."""

    kind: str = ""
    name = forms.CharField(
        required=False, max_length=200, help_text="Name of the registered model; empty: automatic."
    )
    base_version = forms.ModelChoiceField(
        queryset=ModelVersion.objects.all(), required=False, label="Base model (registry)"
    )
    base_path = forms.CharField(required=False, max_length=500, label="…or a model path / hub id")

    learning_rate = forms.FloatField(
        min_value=0, max_value=1, label="Learning rate", widget=forms.NumberInput(attrs={"step": "any"})
    )
    effective_batch_size = forms.IntegerField(
        min_value=1,
        initial=128,
        label="Effective batch size",
        help_text="per-device batch x gradient accumulation x GPUs",
    )
    per_device_batch_size = forms.IntegerField(
        min_value=1,
        required=False,
        label="Per-device batch",
        help_text="Empty: the largest divisor up to 4 (SFT) / 2 (DPO).",
    )
    num_epochs = forms.FloatField(min_value=0.01, initial=1.0, label="Epochs")
    warmup_ratio = forms.FloatField(min_value=0, max_value=0.99, initial=0.03, label="Warmup ratio")
    max_steps = forms.IntegerField(
        min_value=1, required=False, label="Max steps", help_text="Optional; overrides epochs (smoke runs)."
    )
    max_length = forms.IntegerField(
        min_value=16,
        required=False,
        label="Max length (tokens)",
        help_text="Empty: the longest sequence in the data, rounded up to 64.",
    )
    eval_steps = forms.IntegerField(min_value=1, required=False, help_text="Empty: about 10 evaluations.")
    save_steps = forms.IntegerField(
        min_value=1, required=False, help_text="Empty: as eval steps (a multiple of them with validation)."
    )
    logging_steps = forms.IntegerField(min_value=1, initial=10)
    lora = forms.BooleanField(
        required=False, label="LoRA (peft)", help_text="Adapters, merged into the saved model."
    )
    lora_r = forms.IntegerField(min_value=1, initial=16, label="LoRA rank")
    bf16 = forms.ChoiceField(choices=BF16_CHOICES, initial="auto", label="bf16")
    gradient_checkpointing = forms.BooleanField(required=False, initial=True, label="Gradient checkpointing")
    train_seed = forms.IntegerField(initial=0, label="Training seed")
    report_to = forms.ChoiceField(
        choices=[("tensorboard", "TensorBoard (event files in the run's folder)"), ("none", "none")],
        initial="tensorboard",
        required=False,
        label="Report to",
    )

    hyper_fields: tuple[str, ...] = (
        "learning_rate",
        "effective_batch_size",
        "per_device_batch_size",
        "num_epochs",
        "warmup_ratio",
        "max_steps",
        "max_length",
        "eval_steps",
        "save_steps",
        "logging_steps",
        "lora",
        "lora_r",
        "gradient_checkpointing",
        "report_to",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")  # "Balance yes/no 1:1:" reads badly
        super().__init__(*args, **kwargs)
        self.fields["learning_rate"].initial = DEFAULT_LEARNING_RATE[self.kind]

    def clean_learning_rate(self) -> float:
        value = float(self.cleaned_data["learning_rate"])
        if value <= 0:
            raise forms.ValidationError("The learning rate must be positive.")
        return value

    def clean_report_to(self) -> str:
        return self.cleaned_data.get("report_to") or "tensorboard"  # a form posted without it: the default

    def clean(self) -> dict[str, Any]:
        data = super().clean() or self.cleaned_data
        if not data.get("base_version") and not (data.get("base_path") or "").strip():
            raise forms.ValidationError("Pick a registered model or give a model path / hub id.")
        return data

    def base(self) -> ModelVersion | str:
        return self.cleaned_data["base_version"] or self.cleaned_data["base_path"].strip()

    def hyperparameters(self) -> dict:
        data = self.cleaned_data
        out = {k: data[k] for k in self.hyper_fields if data.get(k) is not None}
        out["seed"] = data["train_seed"]
        out["bf16"] = {"auto": None, "on": True, "off": False}[data["bf16"]]
        if data["lora"]:
            out["lora_alpha"] = 2 * data["lora_r"]  # the common alpha = 2r
        return out

    def data_selection(self) -> dict:  # pragma: no cover - per kind
        raise NotImplementedError

    def snapshot_choice(self) -> dict:
        """launch_training's snapshot arguments: the chosen snapshot (or none)."""
        job = self.cleaned_data.get("snapshot")
        return {"snapshot": job} if job else {}

    data_group: tuple[str, ...] = ()

    def groups(self) -> list[tuple[str, list]]:
        """Fieldsets for the page, in order: what is trained, on what data, how."""
        optimisation = [
            "learning_rate",
            "effective_batch_size",
            "per_device_batch_size",
            "num_epochs",
            "warmup_ratio",
            *(["beta"] if "beta" in self.fields else []),
            "max_steps",
        ]
        named = [
            ("Model", ["name", "base_version", "base_path"]),
            ("Data", list(self.data_group)),
            ("Optimisation", optimisation),
            ("Memory and length", ["lora", "lora_r", "bf16", "gradient_checkpointing", "max_length"]),
            (
                "Evaluation, checkpoints, logging",
                ["eval_steps", "save_steps", "logging_steps", "report_to", "train_seed"],
            ),
        ]
        return [(title, [self[n] for n in names]) for title, names in named]


def val_fraction_field(help_text: str) -> forms.FloatField:
    """The share of problems held out for validation (both launch forms)."""
    return forms.FloatField(
        min_value=0, max_value=0.9, initial=0.05, label="Validation fraction", help_text=help_text
    )


class SnapshotField(forms.ModelChoiceField):
    """Finished export snapshots holding `split` rows, newest first, labelled by their counts."""

    def __init__(self, split: str, empty_label: str, help_text: str) -> None:
        self.split = split
        super().__init__(
            queryset=ExportJob.objects.filter(
                status=ExportJob.Status.SUCCEEDED, files__contains=[f"{split}.jsonl"]
            ).order_by("-created_at"),
            required=False,
            label="Export snapshot",
            empty_label=empty_label,
            help_text=help_text,
        )

    def label_from_instance(self, obj: ExportJob) -> str:
        return snapshot_label(obj, self.split)


def snapshot_label(job: ExportJob, split: str) -> str:
    counts = (job.manifest or {}).get("counts", {})
    names = ("sft_train", "sft_val") if split == "sft_train" else (split,)
    rows = " + ".join(f"{counts.get(n, 0):,} {n}" for n in names)
    return f"{job.created_at:%Y-%m-%d %H:%M} · {rows} · sha256 {job.content_sha256[:10] or '—'}"


class SFTLaunchForm(LaunchForm):
    kind = TrainingRun.Kind.SFT
    snapshot = SnapshotField(
        "sft_train",
        "A new snapshot of the selection below, taken at launch",
        "The exact rows the model trains on, recorded on the run and the model. A chosen snapshot "
        "replaces the selection below; a retrain from it sees byte-identical rows.",
    )
    runs = forms.ModelMultipleChoiceField(
        queryset=GenerationRun.objects.filter(status=GenerationRun.Status.SUCCEEDED).select_related(
            "dataset"
        ),
        required=False,
        label="Generation runs",
        help_text="Critiques from these runs. Empty: every teacher run (student samples only when picked).",
    )
    datasets = forms.ModelMultipleChoiceField(
        queryset=Dataset.objects.all(),
        required=False,
        help_text="Only steps from these datasets. Empty: any.",
    )
    val_fraction = val_fraction_field("Held out by problem: no problem in both splits.")
    data_seed = forms.IntegerField(initial=0, label="Split seed")
    balance = forms.BooleanField(required=False, initial=True, label="Balance yes/no 1:1")
    per_step = forms.ChoiceField(
        choices=[("one", "one per step (the authors')"), ("all", "all agreeing")],
        help_text="One: the last agreeing sample of each step, as the authors keep.",
        initial="one",
        required=False,
        label="Agreeing critiques kept",
    )

    data_group = ("snapshot", "runs", "datasets", "val_fraction", "data_seed", "balance", "per_step")

    def snapshot_choice(self) -> dict:
        job = self.cleaned_data.get("snapshot")
        return {"snapshot": job} if job else {"take_snapshot": True}

    def data_selection(self) -> dict:
        d = self.cleaned_data
        return {
            **({"snapshot": d["snapshot"].id} if d.get("snapshot") else {}),
            "runs": sorted(r.id for r in d["runs"]),
            "datasets": sorted(x.id for x in d["datasets"]),
            "val_fraction": d["val_fraction"],
            "seed": d["data_seed"],
            "balance": d["balance"],
            "per_step": d.get("per_step") or "one",
        }


class DPOLaunchForm(LaunchForm):
    kind = TrainingRun.Kind.DPO
    snapshot = SnapshotField(
        "dpo",
        "None: pairs from the student run below",
        "An export snapshot with DPO pairs: the exact rows the model trains on (replaces the student run).",
    )
    student_run = forms.ModelChoiceField(
        queryset=GenerationRun.objects.filter(
            kind=GenerationRun.Kind.STUDENT_SAMPLE, status=GenerationRun.Status.SUCCEEDED
        ).select_related("dataset"),
        required=False,
        label="Student sampling run",
        help_text="Pairs: chosen agrees with the step's label, rejected does not.",
    )
    max_pairs_per_step = forms.IntegerField(min_value=1, initial=2, label="Max pairs per step")
    min_agree_fraction = forms.FloatField(
        min_value=0,
        max_value=0.99,
        required=False,
        initial=0.3333,
        label="Drop steps agreeing at most",
        widget=forms.NumberInput(attrs={"step": "any", "placeholder": "e.g. 0.3333"}),
        help_text="Optional: drop steps where agreeing critiques are at most this fraction of valid ones "
        "(the authors: 1/3).",
    )
    val_fraction = val_fraction_field("Held out by problem.")
    data_seed = forms.IntegerField(initial=0, label="Pairing / split seed")
    balance = forms.BooleanField(required=False, initial=True, label="Balance chosen Yes/No pairs 1:1")
    beta = forms.FloatField(
        min_value=0.0001, initial=0.1, label="DPO beta", widget=forms.NumberInput(attrs={"step": "any"})
    )

    hyper_fields = (*LaunchForm.hyper_fields, "beta")
    data_group = (
        "snapshot",
        "student_run",
        "max_pairs_per_step",
        "min_agree_fraction",
        "balance",
        "val_fraction",
        "data_seed",
    )

    def clean_min_agree_fraction(self) -> float | None:
        value = self.cleaned_data.get("min_agree_fraction")
        # 0.3333 means the authors' 1/3: the rule compares exactly, so store the fraction.
        if value is not None and abs(value - 1 / 3) < 1e-3:
            return 1 / 3
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not data.get("snapshot") and not data.get("student_run"):
            self.add_error("student_run", "Pick a student sampling run, or a snapshot with DPO pairs.")
        return data

    def data_selection(self) -> dict:
        d = self.cleaned_data
        return {
            **({"snapshot": d["snapshot"].id} if d.get("snapshot") else {}),
            "student_run": d["student_run"].id if d.get("student_run") else None,
            "max_pairs_per_step": d["max_pairs_per_step"],
            "min_agree_fraction": d["min_agree_fraction"],
            "balance": d.get("balance", True),
            "val_fraction": d["val_fraction"],
            "seed": d["data_seed"],
        }


LAUNCH_FORMS: dict[str, type[LaunchForm]] = {
    TrainingRun.Kind.SFT: SFTLaunchForm,
    TrainingRun.Kind.DPO: DPOLaunchForm,
}


def selection_from(kind: str, data: Mapping[str, Any]) -> dict | None:
    """The data selection of a (possibly incomplete) launch form, for the live count
    preview: None while a data field is invalid; other fields do not matter here."""
    form = LAUNCH_FORMS[kind](data)
    form.is_valid()
    bad = {name for name in form.data_group if name in form.errors}
    if bad == {"student_run"} and not form.data.get("student_run"):
        form.cleaned_data["student_run"] = None  # not picked yet: the preview says so
    elif bad:
        return None
    return form.data_selection()


class RegisterBaseForm(forms.Form):
    path = forms.CharField(max_length=500, label="Model path / hub id")
    name = forms.CharField(max_length=200, required=False, help_text="Empty: the path.")


class SampleStudentForm(LaunchKeyForm):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)

    dataset = forms.ModelChoiceField(queryset=Dataset.objects.all())
    n_samples = forms.IntegerField(
        min_value=2,
        max_value=64,
        initial=STUDENT.n_samples,
        label="K (samples per step)",
        help_text="Pairs need agreeing and disagreeing samples: K >= 2.",
    )
    temperature = forms.FloatField(min_value=0, max_value=2, initial=STUDENT.temperature)
    top_p = forms.FloatField(min_value=0.01, max_value=1, initial=STUDENT.top_p)
    max_new_tokens = forms.IntegerField(min_value=16, max_value=32768, initial=STUDENT.max_new_tokens)
    limit = forms.IntegerField(min_value=1, required=False, help_text="At most this many steps.")
    seed = forms.IntegerField(required=False)

    def clean_temperature(self) -> float:
        return float(self.cleaned_data["temperature"])

    def step_filter(self) -> dict:
        f = dict(STUDENT_STEP_FILTER)
        if self.cleaned_data.get("limit"):
            f["limit"] = self.cleaned_data["limit"]
        return f


class BuildPairsForm(forms.Form):
    student_run = forms.ModelChoiceField(queryset=GenerationRun.objects.none(), label="Student run")
    max_pairs_per_step = forms.IntegerField(min_value=1, initial=2)
    min_agree_fraction = forms.FloatField(
        min_value=0,
        max_value=0.99,
        required=False,
        initial=0.3333,
        widget=forms.NumberInput(attrs={"step": "any", "placeholder": "e.g. 0.3333"}),
    )
    balance = forms.BooleanField(required=False, initial=True, label="Balance chosen Yes/No pairs 1:1")

    def __init__(self, *args: Any, version: ModelVersion, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        field = self.fields["student_run"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = student_runs(version)

    def clean_min_agree_fraction(self) -> float | None:
        value = self.cleaned_data.get("min_agree_fraction")
        return 1 / 3 if value is not None and abs(value - 1 / 3) < 1e-3 else value


def student_runs(version: ModelVersion) -> QuerySet[GenerationRun]:
    """Finished student sampling runs of this version (through its student endpoint)."""
    if version.student_endpoint_id is None:
        return GenerationRun.objects.none()
    return GenerationRun.objects.filter(
        kind=GenerationRun.Kind.STUDENT_SAMPLE,
        endpoint_id=version.student_endpoint_id,
        status=GenerationRun.Status.SUCCEEDED,
    ).select_related("dataset")
