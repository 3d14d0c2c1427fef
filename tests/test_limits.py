"""The question-length rule has one owner (qa/limits.py); the CLI applies it before loading anything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from qa.limits import QuestionError, QuestionTooLong, check_question

ROOT = Path(__file__).resolve().parents[1]


def test_a_question_is_stripped_and_bounded():
    assert check_question("  Helm 怎么回滚？ \n", 500) == "Helm 怎么回滚？"
    assert check_question("问" * 500, 500) == "问" * 500
    with pytest.raises(QuestionTooLong, match="501 characters long; the limit is 500") as exc:
        check_question("问" * 501, 500)
    # the length is counted as sent, like the published maxLength: whitespace and control
    # characters that strip() removes (U+001C) still count
    with pytest.raises(QuestionTooLong, match="501 characters long"):
        check_question("\x1c" + "问" * 500, 500)
    with pytest.raises(QuestionTooLong):
        check_question("问" * 500 + " ", 500)
    assert exc.value.code == "question_too_long"
    for empty in ("", "   ", None):
        with pytest.raises(QuestionError) as exc:
            check_question(empty, 500)
        assert exc.value.code == "invalid_question" and not isinstance(exc.value, QuestionTooLong)


def test_qa_ask_refuses_an_over_long_question_without_an_index(tmp_path):
    env = {**os.environ, "QA_MAX_QUESTION_CHARS": "20", "QA_INDEX_DIR": str(tmp_path / "nowhere")}
    env.pop("QA_SERVER_URL", None)
    r = subprocess.run([sys.executable, "-m", "qa.cli", "ask", "问" * 21], capture_output=True, text=True,
                       env=env, cwd=ROOT, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "the limit is 20" in r.stderr and "no index" not in r.stderr.lower()
