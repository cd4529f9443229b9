"""Training-data snapshots in TRL's formats, filtered by review.

SFT rows are TRL *prompt-completion, conversational*::

    {"prompt": [{"role": "system"|"user", "content": ...}, ...],
     "completion": [{"role": "assistant", "content": <critique text>}]}

with the prompt rendered by the run's own template (`render_messages`), so a row is
exactly what the teacher saw. DPO rows are TRL *preference, conversational*
(`prompt`, `chosen`, `rejected`), paired per step and template from critiques that
agree (chosen) and disagree (rejected) with the label. A few provenance columns
(`critique_uuid`, `run_id`, ...) ride along; TRL drops unused columns.

Only accepted critiques are written: SFT-eligible (strict, verdict agrees with the
label) and not excluded by review (`reviews.training_exclusion_q`). The SFT pool is
the method's: balanced yes/no, validation held out by problem (training.pools).
Each snapshot is a folder with JSONL + Parquet files and a manifest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections import defaultdict
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.contrib.auth.models import User
from django.db.models import Exists, OuterRef, Q, QuerySet

from annotations.models import Step
from inference.core.prompts import PromptTemplate as CoreTemplate
from inference.models import Critique, GenerationRun, PromptTemplate
from review.models import Review, ReviewEvent, ReviewItem
from review.queue import record
from review.reviews import has_final_tag, label_dispute_q
from rprm_web import runs
from training.core.data import build_preference_pairs
from training.core.snapshot import content_hash

from .models import ExportJob
from .pools import SFTPool, build_sft_pool, excluded_by_review

log = logging.getLogger(__name__)

DEFAULT_FILTERS = {
    "kinds": ["sft", "dpo"],
    "datasets": [],
    "runs": [],
    "error_types": [],
    "require_review": False,
    "balance": True,
    # The authors keep one agreeing critique per step of a run ("all": every one).
    "per_step": "one",
    "val_fraction": 0.05,
    "seed": 0,
    "dpo_pairs_per_step": 2,
    # The authors drop steps where agreeing samples are at most 1/3 of the valid ones.
    "dpo_min_agree_fraction": 1 / 3,
}
CHUNK = 1000
PROGRESS_EVERY = 2000


def normalize_filters(filters: dict | None) -> dict:
    out = {**DEFAULT_FILTERS, **(filters or {})}
    out["kinds"] = [k for k in out["kinds"] if k in ("sft", "dpo")] or ["sft"]
    out["datasets"] = sorted({int(x) for x in out["datasets"]})
    out["runs"] = sorted({int(x) for x in out["runs"]})
    out["error_types"] = sorted({str(x) for x in out["error_types"]})
    if not 0 <= float(out["val_fraction"]) < 1:
        raise ValueError("val_fraction must be in [0, 1)")
    return out


def create_export_job(user: User | None, filters: dict | None = None, *, queue: bool = True) -> ExportJob:
    job = ExportJob.objects.create(filters=normalize_filters(filters), created_by=user)
    record(ReviewEvent.Kind.EXPORT_REQUESTED, user, None, export=str(job.uuid), filters=job.filters)
    if queue:
        runs.enqueue(ExportJob, job.id)
    return job


def run_export_job(job_id: int) -> ExportJob | None:
    """Claim the job (queued, or left running by a dead worker) and write its snapshot.
    The files are written to a temporary folder, renamed into place on success."""

    def body(job: ExportJob) -> dict:
        manifest = write_snapshot(job)
        return {
            "manifest": manifest,
            "files": job.files,
            "rows_done": job.rows_total,
            "content_sha256": job.content_sha256,
        }

    job = runs.execute(ExportJob, job_id, body, select_related=("created_by",))
    if job is not None and job.status != ExportJob.Status.SUCCEEDED:
        shutil.rmtree(_partial(job), ignore_errors=True)
    return job


def _partial(job: ExportJob) -> Path:
    folder = job.folder()
    return folder.with_name(f".{folder.name}.partial")


# --- selection -------------------------------------------------------------------


def _scope(qs: QuerySet[Critique], f: dict) -> QuerySet[Critique]:
    if f["runs"]:
        qs = qs.filter(run_id__in=f["runs"])
    if f["datasets"]:
        qs = qs.filter(step__solution__dataset_id__in=f["datasets"])
    if f["error_types"]:
        # The final decision's tags; a pending review of an item still in blind double
        # review selects nothing.
        tagged = has_final_tag(blind=True, errortype__slug__in=f["error_types"])
        qs = qs.filter(Q(step__solution__error_type__slug__in=f["error_types"]) | tagged)
    return qs


def _teacher_default(qs: QuerySet[Critique], f: dict) -> QuerySet[Critique]:
    # No runs named: teacher critiques only (student samples join when asked for by run).
    return qs if f["runs"] else qs.filter(run__kind__in=GenerationRun.TEACHER_KINDS)


def accepted_critiques(f: dict, *, any_role: bool = False) -> QuerySet[Critique]:
    """SFT-eligible and not excluded by review; optionally only those reviewed sound.
    Teacher runs only unless runs are named or `any_role` (DPO pairs come from any run)."""
    qs = _scope(Critique.objects.sft_eligible().exclude(excluded_by_review()), f)
    if not any_role:
        qs = _teacher_default(qs, f)
    if f["require_review"]:
        qs = qs.filter(review_item__final_decision=Review.Decision.SOUND)
    return qs


def rejected_candidates(f: dict) -> QuerySet[Critique]:
    """Strict critiques that disagree with a label nobody disputes (DPO's rejected side)."""
    qs = _scope(Critique.objects.filter(strict=True, matches_label=False), f)
    return qs.exclude(label_dispute_q()).exclude(
        Exists(
            ReviewItem.objects.filter(critique_id=OuterRef("pk")).filter(
                Q(state=ReviewItem.State.ADJUDICATION) | Q(final_decision=Review.Decision.LABEL_WRONG)
            )
        )
    )


def dpo_pairs(f: dict) -> tuple[list[tuple[int, int]], dict]:
    """(chosen id, rejected id) pairs per (step, template): the prompt must be identical.

    The pairs come from training.core.data.build_preference_pairs, the project's one pair
    rule (the authors' filter and balancing). Returns pairs and stats.
    """
    groups: dict[tuple[int, int], list[dict]] = defaultdict(list)
    labels: dict[Hashable, bool | None] = {}
    for cid, step_id, template_id, verdict, label in accepted_critiques(f, any_role=True).values_list(
        "id", "step_id", "run__template_id", "verdict", "step__label"
    ):
        groups[(step_id, template_id)].append({"id": cid, "verdict": verdict})
        labels[(step_id, template_id)] = label == Step.Label.CORRECT
    for cid, step_id, template_id, verdict in rejected_candidates(f).values_list(
        "id", "step_id", "run__template_id", "verdict"
    ):
        if (step_id, template_id) in groups:  # no chosen side: no pair possible
            groups[(step_id, template_id)].append({"id": cid, "verdict": verdict})
    for key in groups:
        groups[key].sort(key=lambda s: s["id"])
    ordered: dict[Hashable, list[dict]] = {key: groups[key] for key in sorted(groups)}
    cap, min_agree, seed = int(f["dpo_pairs_per_step"]), float(f["dpo_min_agree_fraction"]), int(f["seed"])
    result = build_preference_pairs(
        ordered, labels, max_pairs_per_step=cap, min_agree_fraction=min_agree, seed=seed
    )
    pairs = [(ordered[p.step][p.chosen_index]["id"], ordered[p.step][p.rejected_index]["id"]) for p in result]
    return pairs, result.stats.as_dict()


# --- rendering -------------------------------------------------------------------


class PromptRenderer:
    """Renders each (template, step) prompt once, loading previous steps per chunk."""

    def __init__(self) -> None:
        self._templates: dict[int, CoreTemplate] = {}
        self.used_templates: dict[int, PromptTemplate] = {}
        self._previous: dict[int, list[str]] = {}  # critique id -> the texts of the steps before

    def critiques(self, ids: Sequence[int]) -> dict[int, Critique]:
        rows = Critique.objects.filter(id__in=ids).select_related("run__template", "step__solution__problem")
        out = {c.id: c for c in rows}
        need = {c.step.solution_id for c in out.values()}
        texts: dict[int, dict[int, str]] = defaultdict(dict)
        for solution_id, idx, text in Step.objects.filter(solution_id__in=need).values_list(
            "solution_id", "index", "text"
        ):
            texts[solution_id][idx] = text
        for c in out.values():
            sol = texts[c.step.solution_id]
            self._previous[c.id] = [sol[i] for i in range(c.step.index) if i in sol]
        return out

    def messages(self, c: Critique) -> list[dict[str, str]]:
        template = c.run.template
        if template.id not in self._templates:
            self._templates[template.id] = template.to_core()
            self.used_templates[template.id] = template
        core = self._templates[template.id]
        solution = c.step.solution
        # The exact question the source gave (PRMBench, step rows), as inference renders it.
        question = (solution.metadata or {}).get("prompt_question") or solution.problem.question
        return core.render_messages(question, self._previous[c.id], c.step.text)


def _chunks(ids: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


def _schemas() -> tuple[Any, Any]:
    import pyarrow as pa  # heavy import: only when an export is written

    messages = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    sft = pa.schema(
        [
            ("prompt", messages),
            ("completion", messages),
            ("critique_uuid", pa.string()),
            ("run_id", pa.int64()),
            ("step_id", pa.int64()),
            ("label", pa.string()),
            ("verdict", pa.string()),
        ]
    )
    dpo = pa.schema(
        [
            ("prompt", messages),
            ("chosen", messages),
            ("rejected", messages),
            ("run_id", pa.int64()),
            ("step_id", pa.int64()),
            ("chosen_critique_uuid", pa.string()),
            ("rejected_critique_uuid", pa.string()),
        ]
    )
    return sft, dpo


class _Writer:
    """One split: JSONL and Parquet written side by side, chunk by chunk."""

    def __init__(self, folder: Path, name: str, schema: Any) -> None:
        import pyarrow.parquet as pq  # heavy import: only when an export is written

        self.name, self.schema, self.rows = name, schema, 0
        self.jsonl_path, self.parquet_path = folder / f"{name}.jsonl", folder / f"{name}.parquet"
        self.jsonl = open(self.jsonl_path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.parquet = pq.ParquetWriter(self.parquet_path, schema)

    def write(self, rows: list[dict]) -> None:
        import pyarrow as pa  # heavy import: only when an export is written

        if not rows:
            return
        for row in rows:
            self.jsonl.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.parquet.write_table(pa.Table.from_pylist(rows, schema=self.schema))
        self.rows += len(rows)

    def close(self) -> None:
        self.jsonl.close()
        self.parquet.close()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _Progress:
    """Rows written so far, stored on the job every PROGRESS_EVERY rows and at the end."""

    def __init__(self, job: ExportJob, total: int) -> None:
        self.job = job
        job.rows_total, job.rows_done = total, 0
        runs.progress(job, rows_total=total, rows_done=0)

    def advance(self, n: int) -> None:
        job = self.job
        job.rows_done += n
        if job.rows_done % PROGRESS_EVERY < n or job.rows_done == job.rows_total:
            runs.progress(job, rows_done=job.rows_done)


def _sft_row(c: Critique, renderer: PromptRenderer) -> dict:
    return {
        "prompt": renderer.messages(c),
        "completion": [{"role": "assistant", "content": c.text}],
        "critique_uuid": str(c.uuid),
        "run_id": c.run_id,
        "step_id": c.step_id,
        "label": c.step.label,
        "verdict": c.verdict,
    }


def _dpo_row(chosen: Critique, rejected: Critique, renderer: PromptRenderer) -> dict:
    return {
        "prompt": renderer.messages(chosen),
        "chosen": [{"role": "assistant", "content": chosen.text}],
        "rejected": [{"role": "assistant", "content": rejected.text}],
        "run_id": chosen.run_id,
        "step_id": chosen.step_id,
        "chosen_critique_uuid": str(chosen.uuid),
        "rejected_critique_uuid": str(rejected.uuid),
    }


def _write_sft_split(
    writer: _Writer, ids: list[int], renderer: PromptRenderer, progress: _Progress, source_runs: set[int]
) -> None:
    for chunk in _chunks(ids):
        found = renderer.critiques(chunk)
        rows = []
        for cid in chunk:
            source_runs.add(found[cid].run_id)
            rows.append(_sft_row(found[cid], renderer))
        writer.write(rows)
        progress.advance(len(rows))
    writer.close()


def _write_dpo_split(
    writer: _Writer,
    pairs: list[tuple[int, int]],
    renderer: PromptRenderer,
    progress: _Progress,
    source_runs: set[int],
) -> None:
    for chunk in _chunks(pairs):
        found = renderer.critiques(sorted({i for pair in chunk for i in pair}))
        rows = []
        for chosen_id, rejected_id in chunk:
            chosen, rejected = found[chosen_id], found[rejected_id]
            source_runs.update((chosen.run_id, rejected.run_id))
            rows.append(_dpo_row(chosen, rejected, renderer))
        writer.write(rows)
        progress.advance(len(rows))
    writer.close()


@dataclass
class _Written:
    """What write_snapshot wrote and where its rows came from, for the manifest."""

    filters: dict
    accepted: QuerySet[Critique]
    pool: SFTPool | None
    pair_stats: dict | None
    writers: list[_Writer] = field(default_factory=list)
    source_runs: set[int] = field(default_factory=set)
    renderer: PromptRenderer = field(default_factory=PromptRenderer)


def _write_files(job: ExportJob, folder: Path, f: dict) -> _Written:
    accepted = accepted_critiques(f)
    pool = None
    if "sft" in f["kinds"]:
        pool = build_sft_pool(
            accepted,
            val_fraction=float(f["val_fraction"]),
            seed=int(f["seed"]),
            balance=bool(f["balance"]),
            per_step=str(f.get("per_step") or "one"),
        )
    splits = [("sft_train", pool.train_ids), ("sft_val", pool.val_ids)] if pool else []
    pairs, pair_stats = dpo_pairs(f) if "dpo" in f["kinds"] else ([], None)
    out = _Written(f, accepted, pool, pair_stats)
    progress = _Progress(job, sum(len(ids) for _, ids in splits) + len(pairs))
    sft_schema, dpo_schema = _schemas()
    for name, ids in splits:
        if not ids and name == "sft_val":
            continue
        out.writers.append(_Writer(folder, name, sft_schema))
        _write_sft_split(out.writers[-1], ids, out.renderer, progress, out.source_runs)
    if "dpo" in f["kinds"]:
        out.writers.append(_Writer(folder, "dpo", dpo_schema))
        _write_dpo_split(out.writers[-1], pairs, out.renderer, progress, out.source_runs)
    return out


def _source_run_rows(ids: set[int]) -> list[dict]:
    return [
        {
            "id": r.id,
            "uuid": str(r.uuid),
            "kind": r.kind,
            "dataset": r.dataset.name,
            "model": r.endpoint.name,
            "template": f"{r.template.name} v{r.template.version}",
            "template_hash": r.template.content_hash,
        }
        for r in GenerationRun.objects.filter(id__in=ids).select_related("dataset", "endpoint", "template")
    ]


def _manifest(job: ExportJob, folder: Path, written: _Written) -> dict:
    f = written.filters
    scoped_eligible = _teacher_default(_scope(Critique.objects.sft_eligible(), f), f).count()
    n_accepted = written.accepted.count()
    files = {}
    for w in written.writers:
        for path in (w.jsonl_path, w.parquet_path):
            files[path.name] = {"rows": w.rows, "bytes": path.stat().st_size, "sha256": _sha256(path)}
    return {
        "export": str(job.uuid),
        "created_at": job.created_at.isoformat(),
        "created_by": job.created_by.username if job.created_by else None,
        "filters": f,
        "format": {
            "sft": "TRL prompt-completion, conversational (prompt: messages, completion: [assistant])",
            "dpo": "TRL preference, conversational (prompt, chosen, rejected)",
        },
        "counts": {
            "sft_eligible_in_scope": scoped_eligible,
            "excluded_by_review": scoped_eligible - n_accepted if not f["require_review"] else None,
            "accepted": n_accepted,
            **{w.name: w.rows for w in written.writers},
        },
        "sft_pool": written.pool.stats if written.pool else None,
        "dpo_pairing": written.pair_stats,
        "templates": [
            {"id": t.id, "name": t.name, "version": t.version, "content_hash": t.content_hash}
            for t in sorted(written.renderer.used_templates.values(), key=lambda t: t.id)
        ],
        "source_runs": _source_run_rows(written.source_runs),
        "files": files,
        # What a training run from this snapshot must read back (training.core.snapshot).
        "content_sha256": content_hash(folder),
    }


def write_snapshot(job: ExportJob) -> dict:
    f = normalize_filters(job.filters)
    final, folder = job.folder(), _partial(job)
    if folder.exists():
        shutil.rmtree(folder)  # a re-run rewrites the snapshot from scratch
    folder.mkdir(parents=True)
    manifest = _manifest(job, folder, _write_files(job, folder, f))
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
    # Complete: into place in one rename (a killed export leaves only the hidden partial).
    if final.exists():
        shutil.rmtree(final)
    folder.rename(final)
    job.manifest = manifest
    job.content_sha256 = manifest["content_sha256"]
    job.files = sorted(manifest["files"]) + ["manifest.json"]
    job.rows_done = job.rows_total
    return manifest
