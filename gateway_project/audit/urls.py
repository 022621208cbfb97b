from django.urls import path

from gateway_project.audit import api

urlpatterns = [
    path("audit", api.AuditListApi.as_view()),
    path("audit/<str:record_id>", api.AuditDetailApi.as_view()),
]
