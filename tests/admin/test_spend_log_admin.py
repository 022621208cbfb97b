import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from spend.admin import EstimatedCountPaginator
from spend.models import SpendLog

CHANGELIST = "/admin/spend/spendlog/"
# Any COUNT without a LIMIT inside it counts every matching row; the default paginator runs
# SELECT COUNT(*) AS "__count" FROM "spend_spendlog".
UNBOUNDED_COUNT = re.compile(r"COUNT\((?:(?!LIMIT).)*$", re.IGNORECASE | re.DOTALL)


def _unbounded_counts(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if UNBOUNDED_COUNT.search(q["sql"])]


def test_changelist_renders_the_newest_page_of_many_rows(admin_site, make_spend_logs):
    make_spend_logs(200)

    response = admin_site.get(CHANGELIST)

    assert response.status_code == 200
    rows = list(response.context["cl"].result_list)
    assert len(rows) == 50 and rows[0].request_id == "chatcmpl-00000"


def test_changelist_never_counts_the_whole_table(admin_site, make_spend_logs):
    make_spend_logs(200)

    with CaptureQueriesContext(connection) as queries:
        response = admin_site.get(CHANGELIST)

    assert response.status_code == 200
    assert _unbounded_counts(queries) == []


def test_filtered_changelist_counts_at_most_the_cap(admin_site, make_spend_logs):
    make_spend_logs(200)

    with CaptureQueriesContext(connection) as queries:
        response = admin_site.get(CHANGELIST, {"status__exact": "success", "started": "day"})

    assert response.context["cl"].result_count == 200
    assert _unbounded_counts(queries) == []


@pytest.mark.parametrize("url", [f"{CHANGELIST}add/", f"{CHANGELIST}call-0/delete/"])
def test_adding_and_deleting_are_forbidden(admin_site, make_spend_logs, url):
    make_spend_logs(1)

    assert admin_site.get(url).status_code == 403


def test_change_page_is_view_only(admin_site, make_spend_logs):
    make_spend_logs(1)

    response = admin_site.post(f"{CHANGELIST}call-0/change/", {"spend": "0"})

    assert response.status_code == 403
    assert SpendLog.objects.get().spend == 0.0001
    assert admin_site.get(f"{CHANGELIST}call-0/change/").status_code == 200


def test_changelist_offers_no_actions(admin_site, make_spend_logs):
    make_spend_logs(1)

    assert 'name="action"' not in admin_site.get(CHANGELIST).content.decode()


def test_search_matches_the_exact_request_id_only(admin_site, make_spend_logs):
    make_spend_logs(20)

    exact = admin_site.get(CHANGELIST, {"q": "chatcmpl-00001"}).context["cl"].result_list
    partial = admin_site.get(CHANGELIST, {"q": "chatcmpl-0000"}).context["cl"].result_list

    assert [row.request_id for row in exact] == ["chatcmpl-00001"]
    assert list(partial) == []


def test_last_hour_filter_leaves_out_older_rows(admin_site, make_spend_logs):
    make_spend_logs(90)  # one a minute: 61 started within the last hour, give or take the clock

    rows = admin_site.get(CHANGELIST, {"started": "hour"}).context["cl"].result_count

    assert 59 <= rows <= 61


def test_model_group_filter_offers_the_configured_models(admin_site, make_spend_logs):
    make_spend_logs(3)

    response = admin_site.get(CHANGELIST, {"model_group": "fake-openai-endpoint"})

    assert response.context["cl"].result_count == 3
    assert "?model_group=fake-openai-endpoint" in response.content.decode()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the planner estimate is PostgreSQL's")
def test_paginator_reads_the_planner_estimate_for_a_big_unfiltered_table(make_spend_logs):
    make_spend_logs(200)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE spend_spendlog")
    paginator = type("SmallCap", (EstimatedCountPaginator,), {"cap": 100})(SpendLog.objects.all(), 50)

    with CaptureQueriesContext(connection) as queries:
        count = paginator.count

    assert count == 200
    assert not any("COUNT(" in q["sql"] for q in queries.captured_queries)


def test_changelist_shows_time_model_key_team_end_user_tokens_spend_status_and_request_id(
        admin_site, make_spend_logs, ml_team):
    make_spend_logs(1, key_alias="ci-bot", team_id=ml_team.team_id, end_user="end-7")

    page = admin_site.get(CHANGELIST).content.decode()

    for cell in ("fake-openai-endpoint", "ci-bot", "ml-research", "end-7", ">30<", "$0.000100", "success",
                 "chatcmpl-00000"):
        assert cell in page, cell


def test_changelist_queries_are_few_and_do_not_grow_with_the_rows(admin_site, make_spend_logs, ml_team,
                                                                   django_assert_max_num_queries):
    make_spend_logs(5, team_id=ml_team.team_id)
    admin_site.get(CHANGELIST)
    with django_assert_max_num_queries(9) as few:
        admin_site.get(CHANGELIST)
    SpendLog.objects.all().delete()
    make_spend_logs(200, team_id=ml_team.team_id)

    with django_assert_max_num_queries(9) as many:
        response = admin_site.get(CHANGELIST)

    assert len(many) == len(few)
    assert _unbounded_counts(many) == []
    assert len(response.context["cl"].result_list) == 50


def test_filter_by_team(admin_site, make_spend_logs, ml_team):
    make_spend_logs(3, team_id=ml_team.team_id)
    SpendLog.objects.filter(call_id="call-0").update(team_id="other-team")

    response = admin_site.get(CHANGELIST, {"team_id": ml_team.team_id})

    assert {row.call_id for row in response.context["cl"].result_list} == {"call-1", "call-2"}
    assert f"?team_id={ml_team.team_id}" in response.content.decode()


def test_filter_by_status(admin_site, make_spend_logs):
    make_spend_logs(3)
    SpendLog.objects.filter(call_id="call-1").update(status="failure")

    rows = admin_site.get(CHANGELIST, {"status__exact": "failure"}).context["cl"].result_list

    assert [row.call_id for row in rows] == ["call-1"]


def test_search_matches_the_exact_end_user(admin_site, make_spend_logs):
    make_spend_logs(3)
    SpendLog.objects.filter(call_id="call-2").update(end_user="end-7")

    rows = admin_site.get(CHANGELIST, {"q": "end-7"}).context["cl"].result_list

    assert [row.call_id for row in rows] == ["call-2"]


def test_search_by_a_raw_key_matches_its_digest(admin_site, make_spend_logs):
    from keys.hashing import digest

    make_spend_logs(2)
    SpendLog.objects.filter(call_id="call-1").update(api_key=digest("sk-pasted-by-an-admin"))

    rows = admin_site.get(CHANGELIST, {"q": "sk-pasted-by-an-admin"}).context["cl"].result_list

    assert [row.call_id for row in rows] == ["call-1"]


def test_date_hierarchy_drills_down_without_select_distinct(admin_site, make_spend_logs):
    from datetime import datetime, timezone as tz

    make_spend_logs(3)
    SpendLog.objects.filter(call_id="call-2").update(start_time=datetime(2025, 3, 4, 12, tzinfo=tz.utc))

    with CaptureQueriesContext(connection) as queries:
        years = admin_site.get(CHANGELIST).content.decode()
    day = admin_site.get(CHANGELIST, {"start_time__year": "2025", "start_time__month": "3",
                                      "start_time__day": "4"})

    assert "?start_time__year=2025" in years and "?start_time__year=2026" in years
    assert not any("DISTINCT" in q["sql"].upper() for q in queries.captured_queries)
    assert [row.call_id for row in day.context["cl"].result_list] == ["call-2"]


def test_date_hierarchy_lists_the_days_of_a_chosen_month(admin_site, make_spend_logs):
    from datetime import datetime, timezone as tz

    make_spend_logs(2)
    SpendLog.objects.filter(call_id="call-0").update(start_time=datetime(2025, 2, 27, 12, tzinfo=tz.utc))
    SpendLog.objects.filter(call_id="call-1").update(start_time=datetime(2025, 1, 10, 12, tzinfo=tz.utc))

    page = admin_site.get(CHANGELIST, {"start_time__year": "2025", "start_time__month": "2"}).content.decode()

    assert "start_time__day=1&" in page or "start_time__day=1\"" in page
    assert "start_time__day=27" in page and "start_time__day=28" not in page


def test_a_viewer_reads_the_spend_logs(viewer_site, make_spend_logs):
    make_spend_logs(2)

    response = viewer_site.get(CHANGELIST)

    assert response.status_code == 200 and len(response.context["cl"].result_list) == 2


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the planner and pg_class are PostgreSQL's")
def test_a_big_ledger_is_paged_by_the_start_time_index_and_never_counted(admin_site):
    with connection.cursor() as cursor:
        cursor.execute("""
            INSERT INTO spend_spendlog (call_id, request_id, call_type, api_key, key_alias, team_id, "user",
                end_user, model, model_group, model_id, custom_llm_provider, api_base, prompt_tokens,
                completion_tokens, total_tokens, spend, start_time, end_time, request_tags, metadata, status)
            SELECT 'call-' || i, 'chatcmpl-' || i, 'acompletion', '', NULL, NULL, NULL, NULL, 'm',
                'fake-openai-endpoint', '', '', '', 1, 1, 2, 0.0001, now() - i * interval '1 second',
                now() - i * interval '1 second', '[]', '{}', 'success'
            FROM generate_series(1, 20000) AS i""")
        cursor.execute("ANALYZE spend_spendlog")

    with CaptureQueriesContext(connection) as queries:
        response = admin_site.get(CHANGELIST)
    plan = response.context["cl"].queryset[:50].explain()

    assert response.context["cl"].result_count >= 10_000  # the planner's estimate
    assert not any("COUNT(" in q["sql"].upper() for q in queries.captured_queries)
    assert "Index Scan Backward" in plan and "start_time" in plan and "Seq Scan" not in plan
