"""Launch an SFT or DPO run from the command line, or execute a queued one here.

manage.py train sft --base Qwen/Qwen2.5-Math-7B-Instruct --runs 3 4      # queue on the gpu queue
manage.py train dpo --base-version sft-run1 --student-run 9 --wait        # train here, to the end
manage.py train sft --base Qwen/Qwen2.5-Math-7B-Instruct --snapshot <export uuid>   # exactly those rows
accelerate launch --num_processes 8 manage.py train --execute <uuid>      # multi-GPU (docs/training.md)
"""

from __future__ import annotations

import argparse
import json
import socket
import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from rprm_web.cli import add_json_flag, write_json
from training import actions
from training.models import ExportJob, ModelVersion, TrainingRun
from training.tasks import train


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


class Command(BaseCommand):
    help = "Train an R-PRM model (SFT on kept critiques, DPO on student preference pairs)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("kind", nargs="?", choices=["sft", "dpo"])
        parser.add_argument(
            "--execute",
            metavar="UUID",
            help="execute this queued run in this process (every rank under accelerate launch)",
        )
        parser.add_argument("--name", default="", help="name of the registered model")
        base = parser.add_mutually_exclusive_group()
        base.add_argument("--base", help="base model path or hub id")
        base.add_argument("--base-version", help="base model: a registry name")
        parser.add_argument("--runs", type=int, nargs="*", default=[], help="SFT: generation run ids")
        parser.add_argument("--datasets", type=int, nargs="*", default=[], help="SFT: dataset ids")
        parser.add_argument("--no-balance", action="store_true", help="SFT: keep the yes/no imbalance")
        parser.add_argument("--student-run", type=int, help="DPO: the student sampling run id")
        snapshot = parser.add_mutually_exclusive_group()
        snapshot.add_argument("--snapshot", help="train on this export snapshot's rows (its uuid)")
        snapshot.add_argument(
            "--take-snapshot",
            action="store_true",
            help="SFT: snapshot the selection at launch and train on it",
        )
        parser.add_argument("--max-pairs-per-step", type=int, default=2)
        parser.add_argument("--min-agree-fraction", type=float, help="DPO: e.g. 0.3333 (the authors' 1/3)")
        parser.add_argument("--val-fraction", type=float, default=0.05)
        parser.add_argument("--data-seed", type=int, default=0)
        parser.add_argument("--learning-rate", type=float)
        parser.add_argument("--effective-batch-size", type=int)
        parser.add_argument("--per-device-batch-size", type=int)
        parser.add_argument("--epochs", type=float, dest="num_epochs")
        parser.add_argument("--warmup-ratio", type=float)
        parser.add_argument("--max-steps", type=int)
        parser.add_argument("--max-length", type=int)
        parser.add_argument("--beta", type=float)
        parser.add_argument("--lora", action="store_true", default=None)
        parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None)
        parser.add_argument("--report-to", choices=["tensorboard", "none"], help="default tensorboard")
        parser.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="any other TrainConfig field (JSON value), e.g. --set eval_steps=50",
        )
        parser.add_argument("--wait", action="store_true", help="train in this process instead of queueing")
        parser.add_argument(
            "--hold",
            action="store_true",
            help="create the run without queueing it (then: accelerate launch ... --execute UUID)",
        )
        add_json_flag(parser)

    def snapshot_args(self, o: dict) -> dict:
        if o["take_snapshot"]:
            return {"take_snapshot": True}
        if not o["snapshot"]:
            return {}
        job = ExportJob.objects.filter(uuid=o["snapshot"]).first() if _is_uuid(o["snapshot"]) else None
        if job is None:
            raise CommandError(f"no export snapshot {o['snapshot']}")
        return {"snapshot": job}

    def handle(self, *args: Any, **o: Any) -> None:
        if o["execute"]:
            run = TrainingRun.objects.filter(uuid=o["execute"]).first()
            if run is None:
                raise CommandError(f"no training run {o['execute']}")
            self.run_here(run, o)
            return
        if not o["kind"]:
            raise CommandError("say sft or dpo (or --execute UUID)")
        if o["base_version"]:
            base = ModelVersion.objects.filter(name=o["base_version"]).first()
            if base is None:
                raise CommandError(f"no registered model named {o['base_version']!r}")
        elif o["base"]:
            base = o["base"]
        else:
            raise CommandError("give --base PATH or --base-version NAME")
        if o["kind"] == "sft":
            selection = {
                "runs": o["runs"],
                "datasets": o["datasets"],
                "val_fraction": o["val_fraction"],
                "seed": o["data_seed"],
                "balance": not o["no_balance"],
            }
        else:
            if o["student_run"] is None and not o["snapshot"]:
                raise CommandError("DPO needs --student-run (or --snapshot with DPO rows)")
            selection = {
                "student_run": o["student_run"],
                "max_pairs_per_step": o["max_pairs_per_step"],
                "min_agree_fraction": o["min_agree_fraction"],
                "val_fraction": o["val_fraction"],
                "seed": o["data_seed"],
            }
        names = (
            "learning_rate",
            "effective_batch_size",
            "per_device_batch_size",
            "num_epochs",
            "warmup_ratio",
            "max_steps",
            "max_length",
            "beta",
            "lora",
            "bf16",
            "report_to",
        )
        hyper = {k: o[k] for k in names if o[k] is not None}
        for item in o["set"]:
            key, sep, value = item.partition("=")
            if not sep:
                raise CommandError(f"--set wants KEY=VALUE, got {item!r}")
            hyper[key.strip()] = _value(value)
        snapshot_args = self.snapshot_args(o)
        try:
            run = actions.launch_training(
                o["kind"],
                base,
                selection,
                hyper,
                name=o["name"],
                queue=not (o["wait"] or o["hold"]),
                **snapshot_args,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if o["hold"]:
            self.stdout.write(
                f"created {run.kind} run {run.id}, not queued: manage.py train --execute {run.uuid}"
            )
            write_json(self, o, {"run": run.id, "uuid": run.uuid, "kind": run.kind, "status": run.status})
            return
        if not o["wait"]:
            self.stdout.write(f"queued {run.kind} run {run.id} ({run.uuid}) on the gpu queue")
            write_json(self, o, {"run": run.id, "uuid": run.uuid, "kind": run.kind, "status": run.status})
            return
        self.run_here(run, o)

    def run_here(self, run: TrainingRun, o: dict) -> None:
        # One name per host, not per process: running --execute again after Ctrl-C (or a
        # crash) takes the run back at once and resumes from its last checkpoint.
        result = train(run.id, worker=f"cli@{socket.gethostname()}")
        if result is None:
            return  # not claimable here (or a non-main rank): nothing to report
        version = getattr(result, "output_version", None) if result.status == "succeeded" else None
        self.stdout.write(
            f"{result.kind} run {result.id} {result.status} at step {result.step}/{result.max_steps}"
            + (f"; registered {version.name} at {version.path}" if version else "")
        )
        write_json(
            self,
            o,
            {
                "run": result.id,
                "uuid": result.uuid,
                "kind": result.kind,
                "status": result.status,
                "step": result.step,
                "max_steps": result.max_steps,
                "model": {"name": version.name, "path": version.path} if version else None,
            },
        )
        if result.status == "failed":
            raise CommandError(result.error.splitlines()[0] if result.error else "failed")


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
