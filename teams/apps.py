from django.apps import AppConfig


class TeamsConfig(AppConfig):
    name = "teams"
    verbose_name = "Teams, users and customers"

    def ready(self) -> None:
        from teams import cache  # noqa: F401  (connects cache invalidation to model writes)
        from gateway_project.audit.registry import register, register_part
        from teams.models import Customer, Team, TeamMembership, User
        from teams.selectors import customer_dict, team_dict, user_dict

        register(Team, table="LiteLLM_TeamTable", values=team_dict, prefetch=("memberships__user",))
        register_part(TeamMembership, parent="team")  # a member added or removed is an update of the team
        register(User, table="LiteLLM_UserTable", values=user_dict, object_id="username",
                 exclude=("password", "last_login"), fields=("is_staff", "is_superuser", "is_active"))
        register(Customer, table="LiteLLM_EndUserTable", values=customer_dict)
