"""blocked_user_check: end users on blocked_user_list, or blocked customers, are refused."""
from __future__ import annotations

import pytest

from guardrails.base import GuardrailBlocked
from guardrails.builtin.blocked_users import BlockedUserCheck
from teams.cache import customer_cache
from teams.models import Customer
from tests.guardrails.conftest import chat, make_call, run

CONFIG = """
litellm_settings:
  callbacks: ["blocked_user_check"]
  blocked_user_list: {users}
"""


@pytest.fixture(autouse=True)
def fresh_customer_cache():
    customer_cache.clear()
    yield
    customer_cache.clear()


def refusal(guardrail: BlockedUserCheck, body: dict) -> GuardrailBlocked:
    with pytest.raises(GuardrailBlocked) as caught:
        run(guardrail.pre_call(make_call(body)))
    return caught.value


@pytest.mark.django_db
def test_a_listed_user_is_refused_with_the_contract_error(config_from):
    guardrail = BlockedUserCheck.from_config(config_from(CONFIG.format(users='["user_id_1", "user_id_2"]')))
    error = refusal(guardrail, chat("what llm are you", user="user_id_1"))
    assert error.body() == {"error": {"message": "User blocked from making LLM API Calls. User=user_id_1",
                                      "type": "invalid_request_error", "param": "user", "code": "400"}}


@pytest.mark.django_db
def test_user_id_is_read_when_user_is_absent(config_from):
    guardrail = BlockedUserCheck.from_config(config_from(CONFIG.format(users='["user_id_2"]')))
    assert refusal(guardrail, chat("hi", user_id="user_id_2")).message.endswith("User=user_id_2")


@pytest.mark.django_db
def test_other_users_and_anonymous_requests_pass(config_from):
    guardrail = BlockedUserCheck.from_config(config_from(CONFIG.format(users='["user_id_1"]')))
    run(guardrail.pre_call(make_call(chat("hi", user="someone-else"))))
    run(guardrail.pre_call(make_call(chat("hi"))))


@pytest.mark.django_db
def test_the_list_can_be_a_file(config_from, tmp_path):
    (tmp_path / "blocked.txt").write_text("opted-out-1\nopted-out-2\n")
    guardrail = BlockedUserCheck.from_config(config_from(CONFIG.format(users="blocked.txt")))
    assert guardrail.blocked == {"opted-out-1", "opted-out-2"}
    refusal(guardrail, chat("hi", user="opted-out-2"))


@pytest.mark.django_db
def test_a_customer_blocked_in_the_database_is_refused_and_an_unblocked_one_passes():
    Customer.objects.create(user_id="end-blocked", blocked=True)
    Customer.objects.create(user_id="end-fine", blocked=False)
    guardrail = BlockedUserCheck()
    assert refusal(guardrail, chat("hi", user="end-blocked")).message.endswith("User=end-blocked")
    run(guardrail.pre_call(make_call(chat("hi", user="end-fine"))))
