"""Message.content and Message.reasoning become CompressedTextField (BLOB / bytea).

Forward: every value is copied into a new binary column in the field's plain form
(empty -> zero bytes, else 0x00 + UTF-8), in keyset batches; the text columns are then
dropped and the new ones take their names. Nothing is compressed here, so the upgrade
stays fast and needs no setting: `manage.py compress_messages` compresses existing long
messages afterwards (new ones are compressed as they are written).

Reverse: every value, plain or compressed, is decoded back into a text column. Only
PostgreSQL's text cannot hold NUL, which the binary column can: there a NUL becomes
U+FFFD on the way back.
"""

from django.db import migrations, models

import chat.fields

BATCH = 500


def _rows(schema_editor, columns):
    """(id, *columns) of every message, in keyset batches on the primary key."""
    connection = schema_editor.connection
    table = schema_editor.quote_name("chat_message")
    selected = ", ".join(schema_editor.quote_name(c) for c in ("id", *columns))
    last = 0
    with connection.cursor() as cursor:
        while True:
            cursor.execute(
                f"SELECT {selected} FROM {table} WHERE id > %s ORDER BY id LIMIT %s",  # noqa: S608
                [last, BATCH],
            )
            rows = cursor.fetchall()
            if not rows:
                return
            yield rows
            last = rows[-1][0]


def _update(schema_editor, assignments, values):
    table = schema_editor.quote_name("chat_message")
    sets = ", ".join(f"{schema_editor.quote_name(c)} = %s" for c in assignments)
    with schema_editor.connection.cursor() as cursor:
        cursor.executemany(f"UPDATE {table} SET {sets} WHERE id = %s", values)  # noqa: S608


def _plain(text):
    # The field's plain form, spelled out here so this migration never changes meaning.
    return b"" if not text else b"\x00" + text.encode("utf-8")


def pack_columns(apps, schema_editor):
    binary = schema_editor.connection.Database.Binary
    for rows in _rows(schema_editor, ("content", "reasoning")):
        _update(
            schema_editor,
            ("content_packed", "reasoning_packed"),
            [(binary(_plain(c or "")), binary(_plain(r or "")), pk) for pk, c, r in rows],
        )


def unpack_columns(apps, schema_editor):
    no_nul = schema_editor.connection.vendor == "postgresql"

    def text(stored):
        value = chat.fields.unpack_text(stored) if stored is not None else ""
        return value.replace("\x00", "\ufffd") if no_nul else value

    for rows in _rows(schema_editor, ("content_packed", "reasoning_packed")):
        values = [(text(c), text(r), pk) for pk, c, r in rows]
        _update(schema_editor, ("content", "reasoning"), [v for v in values if v[0] or v[1]])


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0002_send_path_fields"),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="content_packed",
            field=models.BinaryField(null=True),
        ),
        migrations.AddField(
            model_name="message",
            name="reasoning_packed",
            field=models.BinaryField(null=True),
        ),
        migrations.RunPython(pack_columns, unpack_columns),
        migrations.RemoveField(model_name="message", name="content"),
        migrations.RemoveField(model_name="message", name="reasoning"),
        migrations.RenameField(model_name="message", old_name="content_packed", new_name="content"),
        migrations.RenameField(
            model_name="message", old_name="reasoning_packed", new_name="reasoning"
        ),
        migrations.AlterField(
            model_name="message",
            name="content",
            field=chat.fields.CompressedTextField(blank=True, default="", verbose_name="content"),
        ),
        migrations.AlterField(
            model_name="message",
            name="reasoning",
            field=chat.fields.CompressedTextField(blank=True, default="", verbose_name="reasoning"),
        ),
    ]
