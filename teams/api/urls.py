from django.urls import path

from teams.api import views

urlpatterns = [
    path("team/new", views.TeamNewApi.as_view()),
    path("team/update", views.TeamUpdateApi.as_view()),
    path("team/delete", views.TeamDeleteApi.as_view()),
    path("team/info", views.TeamInfoApi.as_view()),
    path("team/list", views.TeamListApi.as_view()),
    path("team/member_add", views.TeamMemberAddApi.as_view()),
    path("team/member_delete", views.TeamMemberDeleteApi.as_view()),
    path("user/new", views.UserNewApi.as_view()),
    path("user/info", views.UserInfoApi.as_view()),
]
