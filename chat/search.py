"""Full-text search over message text, with no extra server, scoped to one user in SQL.

What is indexed: a message's ``content`` once it is final (any status but ``streaming``)
and not empty; not its reasoning nor its rendered HTML. The write paths call
``index_messages`` inside their own transactions: ``services.commit_turn`` (the user's
message: one INSERT, ~0.2 ms, nothing else on the hot path), ``services.begin_edit`` (the
edited message), ``streaming.AnswerStream._save_final`` (the answer: complete, stopped
or error), ``streaming.sweep_stale_streams`` (answers a dead worker left, now
``interrupted``) and ``gateway._store_conversation`` (an API conversation kept as a
chat). A streaming answer's partial saves are not indexed: its text is indexed once,
when final. Indexed text never changes afterwards (an edit or a regenerate replaces
messages, with new ids), so nothing is ever re-indexed. Deletes are SQL triggers on
``chat_message``, so no path (a chat's cascade, retention clean-up, edit, regenerate,
deleting a user, raw SQL) can forget them. ``manage.py rebuild_search_index`` rebuilds
everything from the messages table; migration 0007 indexed the history an upgraded
instance already had. The text is indexed lower-cased, NUL as a space, with two trailing
spaces (``_body``), so that every character starts a trigram.

SQLite: FTS5 with the trigram tokenizer (SQLite >= 3.34). Trigrams make any substring
findable, Chinese included (unicode61 would take a whole run of Han characters as one
word). The FTS table is *contentless* with ``detail=none``: it stores which trigrams each
message has, not the text nor their positions, so it never holds a second, uncompressed
copy of messages stored compressed (``chat.fields``); snippets are cut in Python from the
decompressed text of the rows shown. On bench/corpus.py's mixed corpus (10,000 messages,
17.7 MB of UTF-8; chat_message and its indexes 11.5 MB) the index takes 8.2 MB after a
rebuild (9.3 MB grown one message at a time), against ~45 MB with positions
(detail=full) and ~68 MB for an ordinary FTS5 table keeping its own copy of the text.
Without positions FTS5 cannot match a phrase, so a query becomes an AND of its trigrams,
each quoted (nothing the user types is FTS syntax), and every candidate is checked
against the message's real text (``re.escape``, case-insensitive): the index proposes,
the text decides, so a stale index entry can never show a wrong hit. Candidates come
newest first, at most MAX_CANDIDATES per search (decompressing them is the cost). A
search of those 10,000 messages (1,000 of them the user's) takes 1-17 ms.

    chat_message_search (message_id PK = FTS rowid, session_id, user_id): which messages
        are indexed, and whose (every query filters ``user_id`` here, then again on the
        chat the message belongs to);
    chat_message_fts: the contentless FTS5 table;
    chat_message_search_terms: its term list (fts5vocab, stores nothing);
    chat_message_search_input: a view whose INSTEAD OF trigger fills both in one INSERT;
    chat_message_search_purge: (message_id, stored content) of deleted indexed messages.

A contentless FTS5 table of SQLite 3.40 forgets a row only when given the text it
indexed (``contentless_delete`` needs 3.43), and SQL cannot decompress. So the delete
trigger removes the message from ``chat_message_search`` at once (searches stop finding
it in the same transaction) and keeps its stored bytes in the purge table;
``purge_deleted`` (in the same transaction for chat delete, edit and regenerate; after
each retention batch in clean-up; bounded per call) decompresses them and takes their
trigrams out of the index. Deleting a user leaves its purge rows for the next purge or
clean-up. A purge that fails (a damaged index) is logged and dropped: leftover entries
are harmless, ``rebuild_search_index`` clears them.

Queries of 1-2 characters (Chinese words are often two): no trigram equals them, but
with the trailing spaces every occurrence starts some indexed trigram, so the query ORs
the trigrams that start with it, read from ``chat_message_search_terms``. When more than
MAX_PREFIX_TERMS do (a single common Latin letter), no index helps: the user's newest
MAX_CANDIDATES messages are read instead, and the page says so.

PostgreSQL: pg_trgm. ``chat_message_search`` has the text in ``body`` (bytea cannot be
searched) under a GIN trigram index: ``body LIKE '%q%'`` finds any substring, Chinese
included (pg_trgm needs a UTF-8 LC_CTYPE such as C.UTF-8 for non-ASCII trigrams; with
LC_CTYPE=C the same query stays correct, only slower), 1-2 characters included (no
trigram index helps: the user's rows are read through the (user_id, message_id) index).
Deletes are a statement-level trigger (one more for TRUNCATE); nothing needs a purge.
Same corpus: 33 MB for body, GIN and btree; 2-19 ms a search.

Results: chat titles that match (``icontains``, newest activity first, as the sidebar
filters them) and the newest RESULT_LIMIT matching messages, older ones by message-id
cursor. A message hit links to ``/chats/<id>/#message-<mid>``, with ``?before=<id>``
when the message is older than the chat page's newest page, chosen so that the hit
sits mid-page between the messages around it.
"""

from __future__ import annotations

import logging
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.db import DatabaseError, connection, transaction
from django.db.models import QuerySet
from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from chat.fields import unpack_text
from chat.models import Message, MessageStatus

logger = logging.getLogger(__name__)

RESULT_LIMIT = 50  # message hits per results page
MAX_CANDIDATES = 1000  # messages read (and decompressed) per search, at most
CANDIDATE_CHUNK = 100  # read per query; most searches need one
MAX_QUERY_CHARS = 200
MAX_MATCH_TERMS = 32  # trigrams ANDed in an FTS5 query; the text check does the rest
MAX_PREFIX_TERMS = 500  # a 1-2 character query ORs the trigrams starting with it
PURGE_BATCH = 1000
SNIPPET_BEFORE = 60
SNIPPET_AFTER = 140
_NO_CURSOR = 2**62  # larger than any id; a cursor from a URL is capped to it

Row = tuple[int, int, int, str]  # (message_id, session_id, user_id, text)


# --- Keeping the index in step ---------------------------------------------------------

_INSERT_TARGET = {
    "sqlite": "chat_message_search_input",
    "postgresql": "chat_message_search",
}
_ON_CONFLICT = {"postgresql": " ON CONFLICT (message_id) DO NOTHING"}


def _body(text: str) -> str:
    """The text as indexed: lower case (PostgreSQL then matches with LIKE, not ILIKE,
    which lowers every candidate again), NUL as a space (PostgreSQL's text cannot hold
    it), and two spaces after it, so every character, the last two too, starts a trigram."""
    return text.lower().replace("\x00", " ") + "  "


def index_messages(rows: Iterable[Row]) -> int:
    """Index final message text: one INSERT per 500 rows, in the caller's transaction.

    Idempotent: a message already indexed is skipped. Empty text is not indexed.
    """
    values = [(pk, session, user, _body(text)) for pk, session, user, text in rows if text]
    target = _INSERT_TARGET.get(connection.vendor)
    if not values or target is None:
        return 0
    with connection.cursor() as cursor:
        for start in range(0, len(values), 500):
            chunk = values[start : start + 500]
            placeholders = ", ".join(["(%s, %s, %s, %s)"] * len(chunk))
            cursor.execute(
                f"INSERT INTO {target} (message_id, session_id, user_id, body) "  # noqa: S608
                f"VALUES {placeholders}{_ON_CONFLICT.get(connection.vendor, '')}",
                [value for row in chunk for value in row],
            )
    return len(values)


def index_stored(messages: QuerySet[Message]) -> int:
    """Index messages as stored (those final and not empty), e.g. ones just swept."""
    rows = (
        messages.exclude(status=MessageStatus.STREAMING)
        .exclude(content="")
        .values_list("id", "session_id", "session__user_id", "content")
    )
    return index_messages(rows)


def purge_deleted(*, limit: int = PURGE_BATCH) -> int:
    """Take up to ``limit`` deleted messages' trigrams out of the SQLite FTS index.

    Runs in the caller's transaction (or its own). Returns how many were purged; 0 on
    PostgreSQL, where the delete trigger already removed everything.
    """
    if connection.vendor != "sqlite":
        return 0
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT message_id, content FROM chat_message_search_purge "
            "ORDER BY message_id LIMIT %s",
            [limit],
        )
        rows = cursor.fetchall()
        if not rows:
            return 0
        try:
            with transaction.atomic():
                cursor.executemany(
                    "INSERT INTO chat_message_fts (chat_message_fts, rowid, body) "
                    "VALUES ('delete', %s, %s)",
                    [(pk, _body(unpack_text(stored))) for pk, stored in rows],
                )
        except (DatabaseError, ValueError, zlib.error):
            logger.exception(
                "could not purge %d deleted messages from the search index; their "
                "entries stay (harmless); manage.py rebuild_search_index clears them",
                len(rows),
            )
        cursor.execute(
            "DELETE FROM chat_message_search_purge WHERE message_id <= %s", [rows[-1][0]]
        )
    return len(rows)


def purge_all_deleted(*, batch_size: int = PURGE_BATCH) -> int:
    """Purge everything waiting, one short transaction per batch (clean-up)."""
    total = 0
    while purged := purge_deleted(limit=batch_size):
        total += purged
    return total


def reset_index() -> None:
    """Empty the index (the first step of a rebuild), in one transaction."""
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("INSERT INTO chat_message_fts (chat_message_fts) VALUES ('delete-all')")
            cursor.execute("DELETE FROM chat_message_search_purge")
        cursor.execute("DELETE FROM chat_message_search")


def optimize_index() -> None:
    """Merge the FTS5 index into one segment (SQLite; after a rebuild)."""
    if connection.vendor == "sqlite":
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("INSERT INTO chat_message_fts (chat_message_fts) VALUES ('optimize')")


def index_size_bytes() -> int | None:
    """Bytes on disk of the search tables and indexes; None when the database cannot say."""
    try:
        with connection.cursor() as cursor:
            if connection.vendor == "sqlite":
                cursor.execute(
                    "SELECT SUM(pgsize) FROM dbstat WHERE name LIKE 'chat_message_fts%' "
                    "OR name LIKE 'chat_message_search%'"
                )
            elif connection.vendor == "postgresql":
                cursor.execute("SELECT pg_total_relation_size('chat_message_search')")
            else:
                return None
            value = cursor.fetchone()[0]
    except DatabaseError:  # SQLite built without the dbstat table
        return None
    return int(value or 0)


# --- Searching ---------------------------------------------------------------------------


def clean_query(query: str) -> str:
    """The query as searched: no NUL, trimmed, at most MAX_QUERY_CHARS characters."""
    return query.replace("\x00", "").strip()[:MAX_QUERY_CHARS].strip()


def _fts_expression(query: str) -> str:
    """An FTS5 query: the query's distinct trigrams ANDed, each one a quoted string, so
    quotes, AND, NEAR, * or ^ in the query are only characters to find."""
    grams = list(dict.fromkeys(query[i : i + 3] for i in range(len(query) - 2)))
    if len(grams) > MAX_MATCH_TERMS:  # evenly spread, first and last kept
        step = (len(grams) - 1) / (MAX_MATCH_TERMS - 1)
        grams = [grams[round(i * step)] for i in range(MAX_MATCH_TERMS)]
    return " AND ".join(_quoted(gram) for gram in grams)


def _quoted(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def _short_fts_expression(query: str) -> str | None:
    """An FTS5 query for 1-2 (lower-case) characters: every indexed trigram that starts
    with them, ORed (one read of the term list); '' when none does, None when too many
    (the caller scans instead)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT term FROM chat_message_search_terms WHERE term >= %s AND term <= %s LIMIT %s",
            [query, query + "\U0010ffff", MAX_PREFIX_TERMS + 1],
        )
        terms = [row[0] for row in cursor.fetchall()]
    if len(terms) > MAX_PREFIX_TERMS:
        return None
    return " OR ".join(_quoted(term) for term in terms)


def _like_pattern(query: str) -> str:
    escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# Where a hit's link should point: the ids of the messages page_size and page_size // 2
# newer than it in its chat (NULL when there are not that many).
_NEWER_ID = (
    "(SELECT n.id FROM chat_message n WHERE n.session_id = m.session_id AND n.id > m.id "
    "ORDER BY n.id LIMIT 1 OFFSET %s)"
)


def _fetch_candidates(
    query: str, fts: str | None, user_id: int, *, before: int, limit: int, page_size: int
) -> list[tuple]:
    """Up to ``limit`` of the user's indexed messages older than ``before``, newest first,
    that the index says may contain ``query``: by ``fts`` (SQLite), LIKE (PostgreSQL), or
    all of them when ``fts`` is None on SQLite (the scan of a too broad short query)."""
    source, id_column, text_filter, text_params = "chat_message_search d", "d.message_id", "", []
    if connection.vendor == "postgresql":
        text_filter, text_params = "d.body LIKE %s AND ", [_like_pattern(query.lower())]
    elif fts is not None:
        # CROSS JOIN keeps the FTS5 table the outer loop (SQLite's planner otherwise walks
        # all of the user's messages and runs the full-text query once per message).
        source = (
            "chat_message_fts CROSS JOIN chat_message_search d "
            "ON d.message_id = chat_message_fts.rowid"
        )
        id_column = "chat_message_fts.rowid"
        text_filter, text_params = "chat_message_fts MATCH %s AND ", [fts]
    # The candidates first (LIMIT inside: the index decides how far to read), then
    # their rows; the chat's owner is checked again on the chat itself.
    sql = (
        f"SELECT m.id, m.session_id, m.role, m.content, s.title, {_NEWER_ID}, {_NEWER_ID} "  # noqa: S608
        f"FROM (SELECT d.message_id AS id FROM {source} "
        f"WHERE d.user_id = %s AND {text_filter}{id_column} < %s "
        f"ORDER BY {id_column} DESC LIMIT %s) c "
        "JOIN chat_message m ON m.id = c.id "
        "JOIN chat_chatsession s ON s.id = m.session_id "
        "WHERE s.user_id = %s ORDER BY m.id DESC"
    )
    params = [page_size - 1, page_size // 2 - 1, user_id, *text_params, before, limit, user_id]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def highlight(text: str, pattern: re.Pattern[str]) -> SafeString:
    """``text`` escaped, every match in <mark>, runs of whitespace as one space."""
    parts: list[str] = []
    position = 0
    for match in pattern.finditer(text):
        parts.append(escape(_squeeze(text[position : match.start()])))
        parts.append(f"<mark>{escape(match.group())}</mark>")
        position = match.end()
    parts.append(escape(_squeeze(text[position:])))
    return mark_safe("".join(parts))  # noqa: S308 - every piece is escaped above


def _squeeze(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def snippet(text: str, match: re.Match[str], pattern: re.Pattern[str]) -> SafeString:
    """A short piece of ``text`` around ``match``, cut at spaces where it can be."""
    start = max(0, match.start() - SNIPPET_BEFORE)
    end = min(len(text), match.end() + SNIPPET_AFTER)
    if start > 0 and (space := text.find(" ", start, match.start())) != -1:
        start = space + 1
    if end < len(text) and (space := text.rfind(" ", match.end(), end)) != -1:
        end = space
    body = highlight(text[start:end].strip(), pattern)
    return mark_safe(("… " if start > 0 else "") + body + (" …" if end < len(text) else ""))  # noqa: S308


@dataclass(frozen=True)
class MessageHit:
    message_id: int
    session_id: int
    role: str
    title: str
    title_html: SafeString
    snippet: SafeString
    url: str


@dataclass(frozen=True)
class MessageMatches:
    hits: list[MessageHit]
    # Pass as `before` for the next (older) page; None when everything was looked at.
    older_cursor: int | None = None
    # True when the page stopped because MAX_CANDIDATES were read, not RESULT_LIMIT found.
    budget_spent: bool = False
    # True when no index could narrow the search (a too broad 1-2 character query on
    # SQLite): the user's newest messages were read instead, MAX_CANDIDATES at most.
    scanned: bool = False


def _hit_url(session_id: int, message_id: int, far_id: int | None, mid_id: int | None) -> str:
    url = reverse("chat:detail", args=[session_id])
    if far_id is not None and mid_id is not None:
        # Older than the chat page's newest page: open the page that has it mid-way.
        url += f"?before={mid_id}"
    return f"{url}#message-{message_id}"


def find_messages(
    user_id: int,
    query: str,
    *,
    before: int | None = None,
    page_size: int,
    limit: int | None = None,
) -> MessageMatches:
    """The user's newest messages whose text contains ``query`` (case-insensitive), older
    than message ``before``; ``page_size`` is the chat page's (for the links)."""
    limit = limit or RESULT_LIMIT
    query = clean_query(query)
    if not query:
        return MessageMatches([])
    fts = None
    if connection.vendor == "sqlite":
        folded = query.lower()  # as the text was indexed (see _body)
        fts = _short_fts_expression(folded) if len(folded) < 3 else _fts_expression(folded)
        if fts == "":  # no indexed text has it
            return MessageMatches([])
    scanned = connection.vendor == "sqlite" and fts is None
    pattern = re.compile(re.escape(query), re.IGNORECASE)
    cursor = min(before, _NO_CURSOR) if before is not None else _NO_CURSOR
    hits: list[MessageHit] = []
    read = 0
    while len(hits) < limit and read < MAX_CANDIDATES:
        want = min(CANDIDATE_CHUNK, MAX_CANDIDATES - read)
        rows = _fetch_candidates(
            query, fts, user_id, before=cursor, limit=want, page_size=page_size
        )
        for message_id, session_id, role, stored, title, far_id, mid_id in rows:
            read += 1
            cursor = message_id
            text = unpack_text(stored)
            if match := pattern.search(text):
                hits.append(
                    MessageHit(
                        message_id=message_id,
                        session_id=session_id,
                        role=role,
                        title=title,
                        title_html=highlight(title, pattern),
                        snippet=snippet(text, match, pattern),
                        url=_hit_url(session_id, message_id, far_id, mid_id),
                    )
                )
                if len(hits) == limit:
                    break
        if len(hits) < limit and len(rows) < want:  # nothing older is left
            return MessageMatches(hits, scanned=scanned)
    # Stopped at the limit or the budget: there may be older matches.
    return MessageMatches(hits, cursor, budget_spent=len(hits) < limit, scanned=scanned)


def indexed_message_ids(message_ids: Sequence[int]) -> set[int]:
    """Which of these messages are in the index (for tests and the rebuild's checks)."""
    if not message_ids:
        return set()
    placeholders = ", ".join(["%s"] * len(message_ids))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT message_id FROM chat_message_search WHERE message_id IN ({placeholders})",  # noqa: S608
            list(message_ids),
        )
        return {row[0] for row in cursor.fetchall()}
