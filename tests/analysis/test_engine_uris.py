"""One rule says whether a path is a URI for Spark or a path on this machine (``engines.is_uri``): the cli's
``--out`` and the Spark engine's inputs use it, so a path cannot be a URI for one and a file for the other."""

from __future__ import annotations

import pytest

from mia_bridge.analysis.engines import is_uri


@pytest.mark.parametrize("path", [
    "s3a://bucket/audit/part-0.json.gz", "hdfs:///data/audit", "hdfs://namenode:8020/audit",
    "abfss://c@account.dfs.core.windows.net/audit", "file:///tmp/audit.jsonl", "file:/tmp/audit.jsonl",
    "FILE:/tmp/x", "sc://host:15002", "gs+grpc://x/y",
])
def test_uris(path: str) -> None:
    assert is_uri(path)


@pytest.mark.parametrize("path", [
    "C:\\cases\\audit.jsonl", "C:/cases/audit.jsonl", "c:audit.jsonl",  # drives: a one-letter scheme
    "notes:v2.jsonl", "exports/run:1/audit.csv", "/tmp/a:b", "audit.jsonl", "", "://x", "1s3://b/k",
    "s3 a://b/k", "s\u00e9://b/k", "mailto:someone", "s3a:/bucket/key",  # only file: takes a single slash
])
def test_local_paths(path: str) -> None:
    assert not is_uri(path)
