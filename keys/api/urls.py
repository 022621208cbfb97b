from django.urls import path

from keys.api import views

urlpatterns = [
    path("key/generate", views.KeyGenerateApi.as_view()),
    path("key/update", views.KeyUpdateApi.as_view()),
    path("key/delete", views.KeyDeleteApi.as_view()),
    path("key/info", views.KeyInfoApi.as_view()),
    path("key/list", views.KeyListApi.as_view()),
]
