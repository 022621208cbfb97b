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
