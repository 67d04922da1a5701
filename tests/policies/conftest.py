"""Fixtures shared by the policy tests."""

import pytest

from curator.demo_corpus import pydoc_topics
from policies.pool import chunk_lines


@pytest.fixture(scope="session")
def prose() -> list[str]:
    """~20-line chunks of Python's pydoc topics: real prose every machine has, offline."""
    docs = [d for rec in pydoc_topics() for d in chunk_lines(rec["text"], 20)]
    assert len(docs) >= 200
    return docs
