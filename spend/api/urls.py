from django.urls import path

from spend.api import views

urlpatterns = [
    path("spend/logs", views.SpendLogsApi.as_view()),
    path("spend/tags", views.SpendTagsApi.as_view()),
    path("global/spend/report", views.GlobalSpendReportApi.as_view()),
    path("global/spend/tags", views.GlobalSpendTagsReportApi.as_view()),
    path("key/spend/report", views.KeySpendReportApi.as_view()),
    path("team/spend/report", views.TeamSpendReportApi.as_view()),
    path("team/daily/activity", views.TeamDailyActivityApi.as_view()),
    path("tag/daily/activity", views.TagDailyActivityApi.as_view()),
]
