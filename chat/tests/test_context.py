"""Building the context: system prompt, newest sendable history that fits, few queries."""

from __future__ import annotations

import pytest

from chat.context import FIRST_BATCH, build_context
from chat.fields import unpack_text
from chat.models import ChatSession, Message, MessageStatus
from chat.tokens import REPLY_PRIMING, count_message_tokens
from chat.window import SAFETY_MARGIN
from models_registry.models import ModelConfig

pytestmark = pytest.mark.django_db


def make_model(
    *, context_window: int = 8192, max_output_tokens: int = 1024, system_prompt: str = ""
) -> ModelConfig:
    return ModelConfig.objects.create(
        name=f"Model {ModelConfig.objects.count() + 1}",
        api_url="https://api.example.com/v1",
        model="m",
        context_window=context_window,
        max_output_tokens=max_output_tokens,
        system_prompt=system_prompt,
    )


def window_for(history_tokens: int, *, system_prompt: str = "", output: int = 100) -> ModelConfig:
    """A model whose window leaves exactly ``history_tokens`` for the history."""
    system = count_message_tokens("system", system_prompt) if system_prompt else 0
    window = history_tokens + output + system + SAFETY_MARGIN + REPLY_PRIMING
    return make_model(context_window=window, max_output_tokens=output, system_prompt=system_prompt)


def add_messages(session: ChatSession, specs: list[tuple]) -> list[Message]:
    """Append (role, content[, status]) rows the way chat.services keeps them."""
    rows = [
        Message(
            session=session,
            role=role,
            content=content,
            status=rest[0] if rest else MessageStatus.COMPLETE,
            token_count=count_message_tokens(role, content),
        )
        for role, content, *rest in specs
    ]
    Message.objects.bulk_create(rows)
    session.message_count += len(rows)
    session.save(update_fields=["message_count"])
    return list(session.messages.order_by("-id")[: len(rows)])[::-1]


def conversation(n: int) -> list[tuple[str, str]]:
    return [("user" if i % 2 == 0 else "assistant", f"message {i}") for i in range(n)]


@pytest.fixture
def chat(bob) -> ChatSession:
    return ChatSession.objects.create(user=bob, title="Context")


def test_system_prompt_first_then_history_oldest_first(chat):
    model = make_model(system_prompt="You are terse.")
    add_messages(chat, [("user", "Hi"), ("assistant", "Hello."), ("user", "How are you?")])

    context = build_context(chat, model)

    assert context.messages == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "How are you?"},
    ]
    expected = sum(
        count_message_tokens(role, text)
        for role, text in [
            ("system", "You are terse."),
            ("user", "Hi"),
            ("assistant", "Hello."),
            ("user", "How are you?"),
        ]
    )
    assert context.tokens == expected + REPLY_PRIMING
    assert context.omitted == 0


def test_no_system_message_without_a_system_prompt(chat):
    add_messages(chat, [("user", "Hi")])
    context = build_context(chat, make_model())
    assert context.messages == [{"role": "user", "content": "Hi"}]
    assert context.tokens == count_message_tokens("user", "Hi") + REPLY_PRIMING


def test_keeps_the_newest_messages_that_fit_and_counts_the_rest(chat):
    specs = conversation(10)
    add_messages(chat, specs)
    per_message = count_message_tokens("user", "message 0")
    model = window_for(3 * per_message, system_prompt="Be brief.")

    context = build_context(chat, model)

    assert [m["content"] for m in context.messages] == [
        "Be brief.",
        "message 7",
        "message 8",
        "message 9",
    ]
    assert context.omitted == 7
    assert context.tokens == (
        count_message_tokens("system", "Be brief.") + 3 * per_message + REPLY_PRIMING
    )


def test_stops_at_a_long_message_rather_than_skipping_to_older_ones(chat):
    add_messages(chat, [("user", "old"), ("assistant", "word " * 500), ("user", "new")])
    context = build_context(chat, window_for(50))
    assert [m["content"] for m in context.messages] == ["new"]
    assert context.omitted == 2


def test_a_system_prompt_that_fills_the_window_sends_no_history(chat):
    add_messages(chat, [("user", "Hi")])
    model = make_model(context_window=200, max_output_tokens=100, system_prompt="word " * 300)
    context = build_context(chat, model)
    assert [m["role"] for m in context.messages] == ["system"]
    assert context.omitted == 1


@pytest.mark.parametrize(
    "status", [MessageStatus.ERROR, MessageStatus.INTERRUPTED, MessageStatus.STREAMING]
)
def test_unfinished_answers_are_not_history(chat, status):
    add_messages(chat, [("user", "Q1"), ("assistant", "broken", status), ("user", "Q2")])
    context = build_context(chat, make_model())
    assert [m["content"] for m in context.messages] == ["Q1", "Q2"]
    assert context.omitted == 1


def test_stopped_answers_keep_their_partial_text_in_the_history(chat):
    add_messages(chat, [("user", "Q1"), ("assistant", "half an ans", MessageStatus.STOPPED)])
    context = build_context(chat, make_model())
    assert [m["content"] for m in context.messages] == ["Q1", "half an ans"]


def test_empty_and_system_role_messages_are_not_sent(chat):
    add_messages(chat, [("user", "Q1"), ("assistant", ""), ("system", "stored"), ("user", "Q2")])
    context = build_context(chat, make_model(system_prompt="Current prompt."))
    assert [m["content"] for m in context.messages] == ["Current prompt.", "Q1", "Q2"]
    assert context.omitted == 2


def test_before_id_leaves_out_the_placeholder_and_anything_after_it(chat):
    *_, placeholder, later = add_messages(
        chat,
        [
            ("user", "Q1"),
            ("assistant", "A1"),
            ("user", "Q2"),
            # A placeholder that already holds text must still not be sent as history.
            ("assistant", "partial", MessageStatus.STREAMING),
            ("assistant", "newer than the placeholder"),
        ],
    )
    context = build_context(chat, make_model(), before_id=placeholder.pk)
    assert [m["content"] for m in context.messages] == ["Q1", "A1", "Q2"]
    # 5 messages, 3 sent, the placeholder is not an "earlier" message: only `later` counts.
    assert later.pk > placeholder.pk
    assert context.omitted == 1


def test_omitted_with_a_placeholder_is_only_earlier_messages(chat):
    add_messages(chat, conversation(6))
    [placeholder] = add_messages(chat, [("assistant", "", MessageStatus.STREAMING)])
    per_message = count_message_tokens("user", "message 0")
    context = build_context(chat, window_for(2 * per_message), before_id=placeholder.pk)
    assert [m["content"] for m in context.messages] == ["message 4", "message 5"]
    assert context.omitted == 4


def test_omitted_is_never_negative(chat):
    add_messages(chat, [("user", "Q1")])
    chat.message_count = 0  # a stale count must not produce "-1 earlier messages"
    context = build_context(chat, make_model(), before_id=10**9)
    assert context.omitted == 0


def test_other_sessions_messages_are_never_sent(chat, alice):
    other = ChatSession.objects.create(user=alice, title="Alice's")
    add_messages(other, [("user", "alice's secret")])
    add_messages(chat, [("user", "bob's question")])
    context = build_context(chat, make_model())
    assert [m["content"] for m in context.messages] == ["bob's question"]


def test_a_window_spanning_several_batches_keeps_every_message_in_order(
    chat, django_assert_num_queries
):
    n = FIRST_BATCH * 3 + 5  # 64 + 128 fit in two batches; the third is short
    specs = conversation(n)
    add_messages(chat, specs)
    model = make_model(context_window=100_000)
    # 3 keyset batches; the text comes with them, no separate content read.
    with django_assert_num_queries(3):
        context = build_context(chat, model)
    assert [m["content"] for m in context.messages] == [text for _, text in specs]
    assert context.omitted == 0


@pytest.mark.parametrize("history", [10, 10_000])
def test_query_count_does_not_grow_with_the_history(chat, history, django_assert_num_queries):
    specs = conversation(history)
    add_messages(chat, specs)
    model = window_for(sum(count_message_tokens(role, text) for role, text in specs[-10:]))

    # One keyset batch (ids, counts and stored text together), for 10 messages or 10,000.
    with django_assert_num_queries(1) as captured:
        context = build_context(chat, model)

    assert [m["content"] for m in context.messages] == [text for _, text in specs[-10:]]
    assert context.omitted == history - 10
    (batch_sql,) = (q["sql"] for q in captured.captured_queries)
    # A bounded batch, never the whole chat.
    assert f"LIMIT {FIRST_BATCH}" in batch_sql


@pytest.mark.django_db
def test_counts_only_skip_the_text_but_agree_on_the_numbers(bob, django_assert_num_queries):
    model = ModelConfig.objects.create(
        name="Counts",
        api_url="https://api.example.com/v1",
        model="m",
        context_window=4096,
        max_output_tokens=512,
    )
    session = ChatSession.objects.create(user=bob, model_config=model)
    Message.objects.bulk_create(
        Message(
            session=session,
            role="user" if n % 2 == 0 else "assistant",
            content=f"text {n}",
            token_count=count_message_tokens("user", f"text {n}"),
        )
        for n in range(20)
    )
    session.message_count = 20
    session.save(update_fields=["message_count"])
    full = build_context(session, model)
    with django_assert_num_queries(1):
        counts = build_context(session, model, with_content=False)
    assert (counts.tokens, counts.omitted) == (full.tokens, full.omitted)
    assert counts.messages == []


def test_only_the_kept_messages_are_decompressed(chat, monkeypatch):
    specs = conversation(FIRST_BATCH)  # the whole batch is read, ten messages are kept
    add_messages(chat, specs)
    model = window_for(sum(count_message_tokens(role, text) for role, text in specs[-10:]))
    decoded: list[object] = []

    def counting_unpack(stored):
        decoded.append(stored)
        return unpack_text(stored)

    monkeypatch.setattr("chat.context.unpack_text", counting_unpack)
    context = build_context(chat, model)
    assert len(context.messages) == 10
    assert len(decoded) == 10
