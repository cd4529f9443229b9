from django.db import migrations, models

# ReviewEvent is history: the database itself refuses UPDATE and DELETE (Postgres).
# TRUNCATE stays possible (test flushes, a deliberate wipe). On SQLite a trigger would
# also block Django's flush, which deletes row by row, so the ORM guard is all there is.
CREATE_TRIGGER = """
CREATE OR REPLACE FUNCTION annotations_reviewevent_insert_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'annotations_reviewevent is insert-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS reviewevent_insert_only ON annotations_reviewevent;
CREATE TRIGGER reviewevent_insert_only BEFORE UPDATE OR DELETE ON annotations_reviewevent
    FOR EACH ROW EXECUTE FUNCTION annotations_reviewevent_insert_only();
"""
DROP_TRIGGER = """
DROP TRIGGER IF EXISTS reviewevent_insert_only ON annotations_reviewevent;
DROP FUNCTION IF EXISTS annotations_reviewevent_insert_only();
"""


def _on_postgres(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)

    return run


class Migration(migrations.Migration):

    dependencies = [
        ('annotations', '0006_importjob_run_lifecycle'),
    ]

    operations = [
        migrations.AddField(
            model_name='errortype',
            name='archived',
            field=models.BooleanField(default=False, help_text='Not offered for new tags; existing tags stay.'),
        ),
        migrations.RunPython(_on_postgres(CREATE_TRIGGER), _on_postgres(DROP_TRIGGER)),
    ]
