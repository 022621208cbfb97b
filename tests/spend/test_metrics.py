"""spend.metrics.observe_call: what one finished request adds to each family (in-process registry)."""
from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client import REGISTRY

from spend import metrics


def sample(**changes) -> metrics.CallSample:
    # A unique key digest per test: the families are process-wide, so each test reads only its own series.
    base = metrics.CallSample(
        hashed_api_key=uuid.uuid4().hex, api_key_alias="ci-key", team="team-a", team_alias="Team A", user="u-1",
        end_user="customer-1", requested_model="gpt-group", model="gpt-4o", model_id="dep-1", api_provider="openai",
        api_base="http://127.0.0.1:1/v1", route="/chat/completions", client_ip="127.0.0.1", user_agent="ci",
        status_code=200, exception_class=None, prompt_tokens=10, completion_tokens=4, cached_tokens=2,
        spend=0.25, total_seconds=0.5, upstream_seconds=0.3)
    return dataclasses.replace(base, **changes)


def value(name: str, s: metrics.CallSample, **labels) -> float:
    found = 0.0
    for family in REGISTRY.collect():
        for item in family.samples:
            if item.name == name and item.labels.get("hashed_api_key", s.hashed_api_key) == s.hashed_api_key \
                    and all(item.labels.get(k) == v for k, v in labels.items()):
                found += item.value
    return found


def test_a_success_counts_request_tokens_and_spend():
    s = sample()
    metrics.observe_call(s)
    metrics.observe_call(s)
    assert value("litellm_proxy_total_requests_metric_total", s, status_code="200", end_user="customer-1") == 2
    assert value("litellm_proxy_failed_requests_metric_total", s) == 0
    assert value("litellm_requests_metric_total", s, model="gpt-4o", team="team-a") == 2
    assert value("litellm_input_tokens_metric_total", s) == 20
    assert value("litellm_output_tokens_metric_total", s) == 8
    assert value("litellm_total_tokens_metric_total", s) == 28
    assert value("litellm_cached_tokens_metric_total", s) == 4
    assert value("litellm_spend_metric_total", s) == pytest.approx(0.5)


def test_latency_splits_into_upstream_and_overhead():
    s = sample(total_seconds=0.5, upstream_seconds=0.3)
    metrics.observe_call(s)
    assert value("litellm_request_total_latency_metric_sum", s) == pytest.approx(0.5)
    assert value("litellm_llm_api_latency_metric_sum", s) == pytest.approx(0.3)
    assert value("litellm_overhead_latency_metric_sum", s) == pytest.approx(0.2)
    assert value("litellm_overhead_latency_metric_count", s, model_group="gpt-group") == 1


def test_a_failure_counts_with_its_class_and_status():
    s = sample(status_code=429, exception_class="RateLimitError", prompt_tokens=0, completion_tokens=0, spend=0.0)
    metrics.observe_call(s)
    assert value("litellm_proxy_failed_requests_metric_total", s, exception_class="RateLimitError",
                 exception_status="429") == 1
    assert value("litellm_proxy_total_requests_metric_total", s, status_code="429") == 1
    assert value("litellm_input_tokens_metric_total", s) == 0


def test_a_request_refused_before_any_deployment_counts_only_at_the_proxy():
    s = sample(model=None, model_id=None, api_provider=None, api_base=None, upstream_seconds=None,
               status_code=400, exception_class="BudgetExceededError")
    metrics.observe_call(s)
    assert value("litellm_proxy_total_requests_metric_total", s, model_id="None") == 1
    assert value("litellm_requests_metric_total", s) == 0
    assert value("litellm_llm_api_latency_metric_count", s) == 0


def test_missing_labels_are_the_string_none():
    s = sample(end_user=None, api_key_alias=None, team=None, team_alias=None)
    metrics.observe_call(s)
    assert value("litellm_proxy_total_requests_metric_total", s, end_user="None", api_key_alias="None",
                 team="None", org_id="None") == 1


def test_budget_gauges_show_max_remaining_and_hours_of_every_level():
    team, user, customer = uuid.uuid4().hex, uuid.uuid4().hex, uuid.uuid4().hex
    in_two_days = datetime.now(timezone.utc) + timedelta(hours=48)
    s = sample(team=team, user=user, end_user=customer)
    s = dataclasses.replace(s, budgets=(
        metrics.BudgetSample("key", ("ci-key", s.hashed_api_key), 10.0, 7.5, in_two_days),
        metrics.BudgetSample("team", (team, "Team A"), 100.0, 60.0),
        metrics.BudgetSample("user", (user,), 20.0, 19.0),
        metrics.BudgetSample("customer", (customer,), 5.0, 4.75)))
    metrics.observe_call(s)
    assert value("litellm_api_key_max_budget_metric", s) == 10.0
    assert value("litellm_remaining_api_key_budget_metric", s) == 7.5
    assert 47.9 < value("litellm_api_key_budget_remaining_hours_metric", s) <= 48.0
    assert value("litellm_team_max_budget_metric", s, team=team) == 100.0
    assert value("litellm_remaining_team_budget_metric", s, team=team, team_alias="Team A") == 60.0
    assert value("litellm_team_budget_remaining_hours_metric", s, team=team) == 0   # no reset date: not set
    assert value("litellm_user_max_budget_metric", s, user=user) == 20.0
    assert value("litellm_remaining_user_budget_metric", s, user=user) == 19.0
    assert value("litellm_customer_max_budget_metric", s, end_user=customer) == 5.0
    assert value("litellm_remaining_customer_budget_metric", s, end_user=customer) == 4.75


def test_a_budget_gauge_shows_the_latest_value_not_a_sum():
    s = sample()
    for remaining in (9.0, 8.5):
        metrics.observe_call(dataclasses.replace(s, budgets=(
            metrics.BudgetSample("key", ("ci-key", s.hashed_api_key), 10.0, remaining),)))
    assert value("litellm_remaining_api_key_budget_metric", s) == 8.5


def test_without_a_budget_no_gauge_is_set():
    s = sample()
    metrics.observe_call(s)
    assert value("litellm_api_key_max_budget_metric", s) == 0
    assert not [f for f in REGISTRY.collect() if f.name == "litellm_remaining_api_key_budget_metric"
                for x in f.samples if x.labels["hashed_api_key"] == s.hashed_api_key]


def test_key_model_rate_limit_gauges():
    s = sample(key_model_left=(4, 900))
    metrics.observe_call(s)
    assert value("litellm_remaining_api_key_requests_for_model", s, model="gpt-group", api_key_alias="ci-key") == 4
    assert value("litellm_remaining_api_key_tokens_for_model", s, model="gpt-group") == 900
    only_rpm = sample(key_model_left=(2, None))
    metrics.observe_call(only_rpm)
    assert value("litellm_remaining_api_key_requests_for_model", only_rpm) == 2
    assert not [x for f in REGISTRY.collect() if f.name == "litellm_remaining_api_key_tokens_for_model"
                for x in f.samples if x.labels["hashed_api_key"] == only_rpm.hashed_api_key]


def test_time_to_first_token_and_queue_time():
    stream = sample(first_token_seconds=0.12, queue_seconds=0.003)
    metrics.observe_call(stream)
    assert value("litellm_llm_api_time_to_first_token_metric_sum", stream) == pytest.approx(0.12)
    assert value("litellm_llm_api_time_to_first_token_metric_count", stream, model_group="gpt-group") == 1
    assert value("litellm_request_queue_time_seconds_sum", stream) == pytest.approx(0.003)
    buffered = sample(queue_seconds=0.002)
    metrics.observe_call(buffered)
    assert value("litellm_llm_api_time_to_first_token_metric_count", buffered) == 0   # streams only
    assert value("litellm_request_queue_time_seconds_count", buffered) == 1


def test_latency_per_output_token():
    s = sample(upstream_seconds=0.3, completion_tokens=4)
    metrics.observe_call(s)
    assert value("litellm_deployment_latency_per_output_token_sum", s, litellm_model_name="gpt-4o",
                 model_id="dep-1", team="team-a") == pytest.approx(0.075)
    failed = sample(status_code=500, exception_class="UpstreamError", completion_tokens=0)
    metrics.observe_call(failed)
    assert value("litellm_deployment_latency_per_output_token_count", failed) == 0


def deployment(model_id: str) -> tuple[str, ...]:
    return metrics.deployment_labels("http://127.0.0.1:1/v1", "openai", "gpt-4o", model_id, "gpt-group")


def deployment_value(name: str, model_id: str, **labels) -> float:
    return sum(x.value for f in REGISTRY.collect() for x in f.samples
               if x.name == name and x.labels.get("model_id") == model_id
               and all(x.labels.get(k) == v for k, v in labels.items()))


def test_deployment_attempts_state_and_cooldowns():
    model_id = uuid.uuid4().hex
    dep = deployment(model_id)
    metrics.observe_attempt_succeeded(dep)
    assert deployment_value("litellm_deployment_state", model_id) == 0
    metrics.observe_attempt_failed(dep, 503, fault=True, cooled_down=False)
    assert deployment_value("litellm_deployment_state", model_id, litellm_model_name="gpt-4o") == 1
    metrics.observe_attempt_failed(dep, 503, fault=True, cooled_down=True)
    assert deployment_value("litellm_deployment_state", model_id) == 2
    assert deployment_value("litellm_deployment_cooled_down_total", model_id, exception_status="503") == 1
    assert deployment_value("litellm_deployment_total_requests_total", model_id, requested_model="gpt-group") == 3
    assert deployment_value("litellm_deployment_success_responses_total", model_id) == 1
    assert deployment_value("litellm_deployment_failure_responses_total", model_id, exception_status="503") == 2
    metrics.observe_attempt_succeeded(dep)   # back from cooldown and answering
    assert deployment_value("litellm_deployment_state", model_id) == 0
    metrics.observe_attempt_failed(dep, 400, fault=False, cooled_down=False)   # the request's fault
    assert deployment_value("litellm_deployment_state", model_id) == 0


def test_fallback_counters():
    key = uuid.uuid4().hex
    for succeeded in (True, True, False):
        metrics.observe_fallback(succeeded=succeeded, requested_model="primary", fallback_model="backup",
                                 hashed_api_key=key, api_key_alias=None, team=None, team_alias=None,
                                 exception_class="UpstreamError", exception_status=503)
    labels = dict(requested_model="primary", fallback_model="backup", api_key_alias="None", exception_status="503")
    found = {f.name: sum(x.value for x in f.samples if x.name.endswith("_total")
                         and x.labels["hashed_api_key"] == key and all(x.labels.get(k) == v for k, v in labels.items()))
             for f in REGISTRY.collect() if f.name.endswith("_fallbacks")}
    assert found == {"litellm_deployment_successful_fallbacks": 2, "litellm_deployment_failed_fallbacks": 1}


def test_prepare_multiprocess_dir_empties_old_values(tmp_path):
    (tmp_path / "counter_123.db").write_bytes(b"old")
    (tmp_path / "README").write_text("not ours")
    metrics.prepare_multiprocess_dir(str(tmp_path / "sub"))
    metrics.prepare_multiprocess_dir(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README", "sub"]


def test_guardrail_runs():
    name = f"guard-{uuid.uuid4().hex[:6]}"
    metrics.observe_guardrail(name, "pre_call", 0.01, None)
    metrics.observe_guardrail(name, "pre_call", 0.02, ValueError("refused"))
    found = {(x.name, x.labels.get("status"), x.labels.get("error_type")): x.value for f in REGISTRY.collect()
             for x in f.samples if x.labels.get("guardrail_name") == name and not x.name.endswith("_created")}
    assert found[("litellm_guardrail_requests_total", "success", None)] == 1
    assert found[("litellm_guardrail_requests_total", "error", None)] == 1
    assert found[("litellm_guardrail_errors_total", None, "ValueError")] == 1
    assert found[("litellm_guardrail_latency_seconds_count", "error", "ValueError")] == 1
    assert found[("litellm_guardrail_latency_seconds_sum", "success", "None")] == pytest.approx(0.01)
