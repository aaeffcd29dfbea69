"""Helpers for the operability tests: JSON log lines and Prometheus scrapes."""

from __future__ import annotations

import json
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

Sample = dict[tuple[str, frozenset[tuple[str, str]]], float]


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of a log, parsed; fails on the first line that is not a JSON object."""
    lines = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            raise AssertionError(f"log line {number} is not JSON: {line[:300]}") from None
        assert isinstance(entry, dict), line
        lines.append(entry)
    return lines


def scrape(url: str) -> Sample:
    response = httpx.get(url, timeout=10.0)
    response.raise_for_status()
    assert response.headers["content-type"].startswith("text/plain")
    samples: Sample = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Sample, name: str, **labels: str) -> float:
    """The sample with exactly these labels (0 when absent, as Prometheus would treat a counter)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Sample, name: str, **labels: str) -> float:
    """Sum over every sample of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))
