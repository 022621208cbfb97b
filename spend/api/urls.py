from django.urls import path

from spend.api import views

urlpatterns = [
    path("spend/logs", views.SpendLogsApi.as_view()),
    path("spend/tags", views.SpendTagsApi.as_view()),
]
