"""The message search index (see chat/search.py for the design).

Raw SQL, different on each backend, so no model state changes:

- SQLite: `chat_message_search` (which messages are indexed, and whose), a contentless
  FTS5 table `chat_message_fts` (trigram tokenizer, detail=none: no second copy of the
  text, no positions) with its term list `chat_message_search_terms` (fts5vocab),
  `chat_message_search_purge` (the stored text of deleted indexed
  messages, until chat.search.purge_deleted takes their words out of the FTS index),
  the view `chat_message_search_input` whose INSTEAD OF trigger writes both tables in one
  INSERT, and the trigger that forgets a deleted message.
- PostgreSQL: pg_trgm, `chat_message_search` with the text in `body` (message text is
  compressed bytea, which SQL cannot read) under a GIN trigram index, and triggers that
  delete its rows with their messages (DELETE and TRUNCATE).

Django rebuilds a SQLite table (and so drops its triggers) for most ALTERs: a migration
that alters chat_message must create `chat_message_search_forget` again
(chat/tests/test_search.py checks it is there).
"""

from django.db import migrations

SQLITE_FORWARD = [
    # The `d.user_id = ?` filter of every search reads this table by primary key; the
    # (user_id, message_id) index serves the 1-2 character scan of a user's newest messages.
    """CREATE TABLE chat_message_search (
        message_id integer NOT NULL PRIMARY KEY,
        session_id integer NOT NULL,
        user_id integer NOT NULL
    )""",
    "CREATE INDEX chat_message_search_user ON chat_message_search (user_id, message_id)",
    """CREATE VIRTUAL TABLE chat_message_fts USING fts5(
        body, content='', detail=none, columnsize=0, tokenize='trigram'
    )""",
    # The index's own term list (stores nothing): the trigrams that start with a 1-2
    # character query.
    "CREATE VIRTUAL TABLE chat_message_search_terms USING fts5vocab(chat_message_fts, 'row')",
    """CREATE TABLE chat_message_search_purge (
        message_id integer NOT NULL PRIMARY KEY,
        content blob NOT NULL
    )""",
    """CREATE VIEW chat_message_search_input (message_id, session_id, user_id, body) AS
        SELECT message_id, session_id, user_id, NULL FROM chat_message_search""",
    # Idempotent: a message already indexed is left alone (a contentless FTS5 table
    # would otherwise take the same rowid twice).
    """CREATE TRIGGER chat_message_search_add
        INSTEAD OF INSERT ON chat_message_search_input
        WHEN NOT EXISTS (SELECT 1 FROM chat_message_search WHERE message_id = new.message_id)
    BEGIN
        INSERT INTO chat_message_search (message_id, session_id, user_id)
            VALUES (new.message_id, new.session_id, new.user_id);
        INSERT INTO chat_message_fts (rowid, body) VALUES (new.message_id, new.body);
    END""",
    # Every delete (a chat's cascade, retention, edit, regenerate, a user's deletion, raw
    # SQL): the message leaves the index at once; its stored text waits for the purge.
    """CREATE TRIGGER chat_message_search_forget AFTER DELETE ON chat_message
        WHEN EXISTS (SELECT 1 FROM chat_message_search WHERE message_id = old.id)
    BEGIN
        INSERT OR REPLACE INTO chat_message_search_purge (message_id, content)
            VALUES (old.id, old.content);
        DELETE FROM chat_message_search WHERE message_id = old.id;
    END""",
]

SQLITE_REVERSE = [
    "DROP TRIGGER IF EXISTS chat_message_search_forget",
    "DROP TRIGGER IF EXISTS chat_message_search_add",
    "DROP VIEW IF EXISTS chat_message_search_input",
    "DROP TABLE IF EXISTS chat_message_search_purge",
    "DROP TABLE IF EXISTS chat_message_search_terms",
    "DROP TABLE IF EXISTS chat_message_fts",
    "DROP TABLE IF EXISTS chat_message_search",
]

POSTGRESQL_FORWARD = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    """CREATE TABLE chat_message_search (
        message_id bigint NOT NULL PRIMARY KEY,
        session_id bigint NOT NULL,
        user_id bigint NOT NULL,
        body text NOT NULL
    )""",
    "CREATE INDEX chat_message_search_user ON chat_message_search (user_id, message_id)",
    "CREATE INDEX chat_message_search_body ON chat_message_search USING gin (body gin_trgm_ops)",
    """CREATE FUNCTION chat_message_search_forget() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'TRUNCATE' THEN
            DELETE FROM chat_message_search;
        ELSE
            DELETE FROM chat_message_search AS s USING gone WHERE s.message_id = gone.id;
        END IF;
        RETURN NULL;
    END
    $$""",
    # One DELETE per statement (a transition table), however many messages it removes.
    """CREATE TRIGGER chat_message_search_forget AFTER DELETE ON chat_message
        REFERENCING OLD TABLE AS gone
        FOR EACH STATEMENT EXECUTE FUNCTION chat_message_search_forget()""",
    """CREATE TRIGGER chat_message_search_truncate AFTER TRUNCATE ON chat_message
        FOR EACH STATEMENT EXECUTE FUNCTION chat_message_search_forget()""",
]

POSTGRESQL_REVERSE = [
    "DROP TRIGGER IF EXISTS chat_message_search_truncate ON chat_message",
    "DROP TRIGGER IF EXISTS chat_message_search_forget ON chat_message",
    "DROP FUNCTION IF EXISTS chat_message_search_forget()",
    "DROP TABLE IF EXISTS chat_message_search",
    # pg_trgm stays: dropping an extension something else may use is the operator's call.
]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        for statement in statements_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(statement, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0005_rendered_html"),
    ]

    operations = [
        migrations.RunPython(
            _run({"sqlite": SQLITE_FORWARD, "postgresql": POSTGRESQL_FORWARD}),
            _run({"sqlite": SQLITE_REVERSE, "postgresql": POSTGRESQL_REVERSE}),
            elidable=False,
        ),
    ]
