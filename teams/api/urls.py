from django.urls import path

from teams.api import callbacks, views

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
    path("team/block", views.TeamBlockApi.as_view()),
    path("team/unblock", views.TeamUnblockApi.as_view()),
    path("team/<path:team_id>/callback", callbacks.TeamCallbackApi.as_view()),
    path("team/<path:team_id>/disable_logging", callbacks.TeamDisableLoggingApi.as_view()),
    path("user/update", views.UserUpdateApi.as_view()),
    path("user/delete", views.UserDeleteApi.as_view()),
    path("user/unblock", views.CustomerUnblockApi.as_view()),
    path("customer/new", views.CustomerNewApi.as_view()),
    path("end_user/new", views.CustomerNewApi.as_view()),
    path("customer/info", views.CustomerInfoApi.as_view()),
    path("customer/list", views.CustomerListApi.as_view()),
    path("customer/update", views.CustomerUpdateApi.as_view()),
    path("customer/delete", views.CustomerDeleteApi.as_view()),
    path("customer/block", views.CustomerBlockApi.as_view()),
    path("customer/unblock", views.CustomerUnblockApi.as_view()),
]
