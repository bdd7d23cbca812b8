"""The context window: newest messages that fit, stopping at the first that does not."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from chat.tokens import REPLY_PRIMING
from chat.window import SAFETY_MARGIN, WindowResult, context_budget, select_window


@pytest.mark.parametrize(
    ("newest_first", "budget", "kept_ids", "tokens"),
    [
        pytest.param([], 100, [], 0, id="empty history"),
        pytest.param([(3, 40), (2, 30), (1, 30)], 100, [1, 2, 3], 100, id="exact fit"),
        pytest.param([(3, 40), (2, 30), (1, 31)], 100, [2, 3], 70, id="one over"),
        pytest.param([(3, 10), (2, 20)], 1000, [2, 3], 30, id="everything fits"),
        pytest.param([(3, 10_000), (2, 1), (1, 1)], 100, [], 0, id="newest alone too big"),
        pytest.param(
            [(4, 10), (3, 95), (2, 1), (1, 1)],
            100,
            [4],
            10,
            id="stops at the first that does not fit though older ones would",
        ),
        pytest.param([(2, 5), (1, 5)], 0, [], 0, id="no budget (system prompt ate it)"),
        pytest.param([(9, 4), (7, 4), (4, 4)], 8, [7, 9], 8, id="ids with gaps, oldest first"),
    ],
)
def test_select_window(newest_first, budget, kept_ids, tokens):
    assert select_window(newest_first, budget) == WindowResult(kept_ids=kept_ids, tokens=tokens)


@pytest.mark.parametrize(
    ("window", "output", "system", "margin", "expected"),
    [
        pytest.param(8192, 1024, 0, None, 8192 - 1024 - SAFETY_MARGIN - REPLY_PRIMING, id="plain"),
        pytest.param(
            8192, 1024, 500, None, 8192 - 1024 - 500 - SAFETY_MARGIN - REPLY_PRIMING, id="system"
        ),
        pytest.param(1000, 100, 0, 0, 1000 - 100 - REPLY_PRIMING, id="no margin"),
        pytest.param(1000, 100, 900, None, 0, id="system prompt eats the whole window"),
        pytest.param(100, 99, 0, None, 0, id="margin and priming do not fit: zero, not negative"),
        pytest.param(10, 500, 500, 1000, 0, id="absurd settings: still zero"),
    ],
)
def test_context_budget(window, output, system, margin, expected):
    kwargs = {} if margin is None else {"margin": margin}
    budget = context_budget(
        context_window=window, max_output_tokens=output, system_prompt_tokens=system, **kwargs
    )
    assert budget == expected


def test_a_budget_of_zero_keeps_nothing_even_when_the_system_prompt_is_huge():
    budget = context_budget(context_window=4096, max_output_tokens=512, system_prompt_tokens=10_000)
    assert select_window([(1, 1)], budget) == WindowResult(kept_ids=[], tokens=0)


def _cursor(rows: list[tuple[int, int]], readable: int) -> Iterator[tuple[int, int]]:
    """Like a database cursor: fails if asked for more than ``readable`` rows."""
    for read, row in enumerate(rows):
        if read >= readable:
            raise AssertionError(f"select_window read row {read + 1}, past the stopping point")
        yield row


def test_reads_no_further_than_the_first_message_that_does_not_fit():
    rows = [(100 - i, 10) for i in range(100)]
    # 5 fit a budget of 55; the 6th is read to learn it does not fit; the 7th never is.
    result = select_window(_cursor(rows, readable=6), 55)
    assert result == WindowResult(kept_ids=[96, 97, 98, 99, 100], tokens=50)


def test_reads_a_short_history_to_its_end_only():
    rows = [(2, 1), (1, 1)]
    assert select_window(_cursor(rows, readable=2), 100).kept_ids == [1, 2]


def test_window_module_does_not_import_django():
    code = (
        "import sys, chat.window\n"
        "bad = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
        "assert not bad, bad\n"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
