"""Which history messages fit the model's context window: a pure function, no Django.

The caller feeds ``(message_id, token_count)`` pairs newest first, straight from a
database cursor; ``select_window`` reads only as many as it keeps plus the one that
does not fit, so the cost of choosing grows with the window, never with the history.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from chat.tokens import REPLY_PRIMING

# Tokens held back for what cl100k_base cannot know exactly: the provider's own
# chat template, tokenizer differences, a name field. Small, because the output
# reservation (max_output_tokens) is already the big cushion.
SAFETY_MARGIN = 32


@dataclass(frozen=True)
class WindowResult:
    kept_ids: list[int]  # oldest -> newest, the messages to send
    tokens: int  # tokens of the kept messages (their stored counts)


def context_budget(
    *,
    context_window: int,
    max_output_tokens: int,
    system_prompt_tokens: int,
    margin: int = SAFETY_MARGIN,
) -> int:
    """Tokens left for history once the answer, system prompt, margin and priming are reserved.

    Never negative: a system prompt that eats the window leaves 0, and nothing is sent.
    """
    budget = context_window - max_output_tokens - system_prompt_tokens - margin - REPLY_PRIMING
    return max(budget, 0)


def select_window(newest_first: Iterable[tuple[int, int]], budget: int) -> WindowResult:
    """Keep the newest messages while they fit ``budget``; stop at the first that does not.

    A message that does not fit ends the window even if an older, smaller one would fit:
    skipping it would send a conversation with a hole in the middle.
    """
    kept: list[int] = []
    total = 0
    for message_id, token_count in newest_first:
        if total + token_count > budget:
            break
        kept.append(message_id)
        total += token_count
    kept.reverse()
    return WindowResult(kept_ids=kept, tokens=total)
