"""The Prometheus configuration, recording rules and alerts, checked and unit-tested by promtool."""

from __future__ import annotations

from pathlib import Path

import yaml

PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "prometheus"
RULES = PROMETHEUS_DIR / "rules"
TEMPLATE = PROMETHEUS_DIR.parent / "roles/prometheus/templates/prometheus.yml.j2"
STATIC_RULES = [RULES / "recording.yml", RULES / "alerts.yml"]


def test_rules_pass_promtool_check(promtool):
    result = promtool("check", "rules", *map(str, STATIC_RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass(promtool):
    result = promtool("test", "rules", str(PROMETHEUS_DIR / "tests" / "rules_test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test():
    alerts = {
        rule["alert"]
        for group in yaml.safe_load((RULES / "alerts.yml").read_text())["groups"]
        for rule in group["rules"]
    }
    suite = yaml.safe_load((PROMETHEUS_DIR / "tests" / "rules_test.yml").read_text())
    tested = {
        case["alertname"]
        for test in suite["tests"]
        for case in test.get("alert_rule_test", [])
        if case["exp_alerts"]
    }
    assert alerts == tested


def test_every_recording_rule_has_a_unit_test():
    recorded = {
        rule["record"]
        for group in yaml.safe_load((RULES / "recording.yml").read_text())["groups"]
        for rule in group["rules"]
    }
    suite = yaml.safe_load((PROMETHEUS_DIR / "tests" / "rules_test.yml").read_text())
    tested = {
        case["expr"].split("{")[0]
        for test in suite["tests"]
        for case in test.get("promql_expr_test", [])
    }
    # The discovery alert's test exercises the rule only that alert reads.
    tested |= {"job_quantile:cqkd_dht_discovery_duration_seconds:histogram_quantile_rate10m"}
    assert recorded <= tested, recorded - tested


def test_thresholds_render_to_valid_rules(promtool, render, tmp_path):
    rendered = tmp_path / "thresholds.yml"
    rendered.write_text(render(
        RULES / "thresholds.yml.j2",
        {"prometheus_discovery_timeout_seconds": 90, "prometheus_qber_abort_threshold": 0.11},
    ))
    result = promtool("check", "rules", str(rendered))
    assert result.returncode == 0, result.stdout + result.stderr
    exprs = [r["expr"] for r in yaml.safe_load(rendered.read_text())["groups"][0]["rules"]]
    assert exprs == ["vector(90)", "vector(0.11)"]


def _render_config(render, config_dir: Path, targets: dict[str, list[str]]) -> Path:
    (config_dir / "rules").mkdir(parents=True)
    (config_dir / "file_sd").mkdir()
    for rules in STATIC_RULES:
        (config_dir / "rules" / rules.name).write_text(rules.read_text())
    groups = [{"targets": hosts, "labels": {"job": job}} for job, hosts in targets.items()]
    (config_dir / "file_sd" / "cqkd.yml").write_text(yaml.safe_dump(groups))
    config = config_dir / "prometheus.yml"
    config.write_text(render(TEMPLATE, {
        "prometheus_config_dir": str(config_dir),
        "prometheus_scrape_interval": "10s",
        "prometheus_scrape_timeout": "5s",
        "prometheus_evaluation_interval": "10s",
    }))
    return config


def test_config_reads_the_targets_and_rules_it_was_rendered_for(promtool, render, tmp_path):
    targets = {
        "bootstrap": ["10.0.0.1:5678", "10.0.0.2:5679"],
        "worker": ["10.0.0.1:7001", "10.0.0.2:7001"],
        "alice": ["10.0.0.1:8001"],
        "bob": ["10.0.0.2:8002"],
    }
    config = _render_config(render, tmp_path, targets)
    result = promtool("check", "config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 2 rule files found" in result.stdout
    (job,) = yaml.safe_load(config.read_text())["scrape_configs"]
    assert job["file_sd_configs"][0]["files"] == [f"{tmp_path}/file_sd/cqkd.yml"]


def test_config_check_rejects_a_broken_rule_file(promtool, render, tmp_path):
    config = _render_config(render, tmp_path, {"worker": ["10.0.0.1:7001"]})
    (tmp_path / "rules" / "broken.yml").write_text(
        "groups:\n  - name: x\n    rules:\n      - record: a\n        expr: rate(\n"
    )
    result = promtool("check", "config", str(config))
    assert result.returncode != 0
