"""The bench's command line: where the results table goes."""
from __future__ import annotations

import pytest

from bench.run import RESULTS_END, RESULTS_START, ROOT, parse, write_docs


def test_a_full_run_rewrites_the_performance_page_and_no_docs_leaves_it():
    assert parse([]).docs == ROOT / "docs" / "performance.md"
    assert parse(["--concurrency", "10", "--no-docs"]).docs is None
    assert parse(["--smoke"]).docs is None


def test_the_table_replaces_only_the_results_block(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(f"intro\n{RESULTS_START}\nold table\n{RESULTS_END}\nafter\n")

    write_docs(page, "| new |")

    assert page.read_text() == f"intro\n{RESULTS_START}\n| new |\n{RESULTS_END}\nafter\n"


def test_a_page_without_a_results_block_is_a_clear_error(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("no markers here\n")

    with pytest.raises(SystemExit, match="has no results block"):
        write_docs(page, "| new |")
    assert page.read_text() == "no markers here\n"
