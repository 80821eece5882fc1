"""``docs/grafana-dashboard.json`` is valid, picks its Prometheus data source from a variable,
and every metric (and grouping label) it queries exists in a real ``/metrics`` scrape."""

from __future__ import annotations

import json
import pathlib
import re
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from server.harness import Server, kill_all, processes_under, wait_for

DASHBOARD = pathlib.Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"
METRIC = re.compile(r"\b(blacksmith_[a-z0-9_]+)\b")
GROUPING = re.compile(r"\bby \(([^)]*)\)")
MATCHER = re.compile(r"\b(blacksmith_[a-z0-9_]+)\{([^}]*)\}")
BUILT_IN = {"instance", "job", "le"}


def load() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def targets(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in dashboard["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            found.extend(inner.get("targets", []))
    return found


def queries(dashboard: dict[str, Any]) -> list[str]:
    found = [target["expr"] for target in targets(dashboard)]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found.append(variable["definition"])
    return found


def test_the_dashboard_is_valid_and_uses_a_prometheus_datasource_variable() -> None:
    dashboard = load()
    assert dashboard["title"] and dashboard["uid"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert len(targets(dashboard)) >= 10
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def scrape(tmp_path: pathlib.Path) -> str:
    """A real ``/metrics`` of the real server, after one job ran to completion."""
    server = Server(tmp_path / "data", BLACKSMITH_GITHUB__POLL_INTERVAL_WITH_WEBHOOKS="1").start()
    try:
        job_id = server.queue(duration_seconds=0.2)
        wait_for(lambda: server.job(job_id)["status"] == "completed", timeout=30, what="the job")
        with urllib.request.urlopen(server.url + "/metrics", timeout=10) as answer:
            return str(answer.read().decode())
    finally:
        server.stop()
        kill_all(processes_under(tmp_path / "data"))


@pytest.mark.slow
def test_every_metric_the_dashboard_queries_is_exported(tmp_path: pathlib.Path) -> None:
    exposition = scrape(tmp_path)
    names: set[str] = set()
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(exposition):
        suffixes = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_sum", "_count"),
        }.get(family.type, ("",))
        names.update(family.name + suffix for suffix in suffixes)
        for sample in family.samples:
            names.add(sample.name)
            labels.setdefault(sample.name, set()).update(sample.labels)
    queried = {name for query in queries(load()) for name in METRIC.findall(query)}
    assert queried, "the dashboard queries no blacksmith_ metric"
    missing = sorted(queried - names)
    assert missing == [], f"queried but not exported: {missing}"
    # Labels the queries filter or group on exist on the metrics they query.
    for query in queries(load()):
        used = set(METRIC.findall(query))
        known = set().union(*(labels.get(m, set()) for m in used)) | BUILT_IN
        if not any(labels.get(m) for m in used):
            continue  # no sample yet (e.g. act failures): labels cannot be checked
        for group in GROUPING.findall(query):
            for label in filter(None, (part.strip() for part in group.split(","))):
                assert label in known, f"{query}: no label {label!r} on {sorted(used)}"
        for _metric, matchers in MATCHER.findall(query):
            for matcher in matchers.split(","):
                label = re.split(r"[=!~]", matcher, maxsplit=1)[0].strip()
                assert label in known, f"{query}: no label {label!r} on {sorted(used)}"
