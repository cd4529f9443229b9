from django.db import migrations

# The authors' acceptance rule, frozen here so later edits of the parser cannot change
# what this migration did.
YES = "Verification: Is the step correct (Yes/No)? Yes"
NO = "Verification: Is the step correct (Yes/No)? No"


def _authors_verdict(text: str):
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n").strip()
    counts = (text.count(YES), text.count(NO))
    if counts == (1, 0):
        target, verdict = YES, "yes"
    elif counts == (0, 1):
        target, verdict = NO, "no"
    else:
        return None
    return verdict if text.rstrip(".").strip().endswith(target) else None


def forwards(apps, schema_editor):
    """Critiques stored as unparseable that the authors' filter accepts get that verdict
    (strict stays False, so reviewers can tell them apart)."""
    Critique = apps.get_model("inference", "Critique")
    changed = []
    qs = Critique.objects.filter(verdict="unparseable").select_related("step").only("id", "text", "step__label")
    for c in qs.iterator(chunk_size=2000):
        verdict = _authors_verdict(c.text)
        if verdict is None:
            continue
        c.verdict = verdict
        label = c.step.label
        c.matches_label = None if label not in ("correct", "incorrect") else (verdict == "yes") == (label == "correct")
        changed.append(c)
        if len(changed) >= 2000:
            Critique.objects.bulk_update(changed, ["verdict", "matches_label"])
            changed = []
    if changed:
        Critique.objects.bulk_update(changed, ["verdict", "matches_label"])


def backwards(apps, schema_editor):
    Critique = apps.get_model("inference", "Critique")
    Critique.objects.filter(strict=False).exclude(verdict="unparseable").update(verdict="unparseable", matches_label=None)


class Migration(migrations.Migration):
    dependencies = [("inference", "0006_prompt_template_rendering_and_source_sha")]
    operations = [migrations.RunPython(forwards, backwards)]
