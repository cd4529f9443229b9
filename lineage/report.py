"""A model version's lineage as plain text lines (the command and the quickstart print it)."""

from __future__ import annotations

from .graph import VersionLineage


def lineage_lines(lin: VersionLineage) -> list[str]:
    v = lin.version
    lines = [f"{v.name} ({v.get_kind_display()}) {v.path}"]
    for d in lin.datasets:
        lines.append(f"  dataset {d.name}: {d.n_solutions} solutions, {d.n_steps} steps")
    for s in lin.source_runs:
        o = s.outcome
        lines.append(
            f"  run #{s.run.id} {s.run.get_kind_display()} by {s.run.endpoint.name}, "
            f"template {s.run.template.name} v{s.run.template.version}: {o.critiques} critiques, "
            f"{o.reviewed} reviewed, {o.flawed} flawed, {o.label_wrong} label wrong, "
            f"{o.corrections_accepted} labels corrected"
        )
    if lin.snapshot is not None:
        rows = ", ".join(f"{k} {n}" for k, n in lin.snapshot_rows.items())
        lines.append(f"  snapshot #{lin.snapshot.id}: {rows}; sha256 {lin.snapshot_sha256[:12]}")
    if lin.ancestors:
        chain = " ← ".join(f"{a.name} ({a.get_kind_display()})" for a in lin.ancestors)
        lines.append(f"  trained from {chain} (each has a lineage of its own)")
    if lin.training_run is not None:
        lines.append(f"  training run #{lin.training_run.id} ({lin.training_run.get_kind_display()})")
    for e in lin.evaluations:
        shown = f"{e.value:.1f}" if e.value is not None else f"undefined ({e.undefined or e.run.status})"
        lines.append(f"  evaluation #{e.run.id} {e.run.get_benchmark_display()}: {e.label} {shown}")
    return lines
