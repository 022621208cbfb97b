from django.urls import path

from keys.api import views

urlpatterns = [
    path("key/generate", views.KeyGenerateApi.as_view()),
    path("key/update", views.KeyUpdateApi.as_view()),
    path("key/delete", views.KeyDeleteApi.as_view()),
    path("key/info", views.KeyInfoApi.as_view()),
    path("key/list", views.KeyListApi.as_view()),
    path("key/block", views.KeyBlockApi.as_view()),
    path("key/unblock", views.KeyUnblockApi.as_view()),
    path("key/regenerate", views.KeyRegenerateApi.as_view()),
    path("key/<str:key>/regenerate", views.KeyRegenerateApi.as_view()),
]
