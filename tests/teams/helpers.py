"""Expected shapes and assertions shared by the team and user endpoint tests."""
TEAM_FIELDS = {
    "team_id", "team_alias", "admins", "members", "members_with_roles", "metadata", "models", "max_budget",
    "spend", "blocked", "tpm_limit", "rpm_limit", "max_parallel_requests", "budget_duration", "budget_reset_at",
    "created_at", "updated_at",
}
USER_FIELDS = {
    "user_id", "user_email", "user_role", "max_budget", "spend", "models", "metadata", "budget_duration",
    "budget_reset_at", "tpm_limit", "rpm_limit", "max_parallel_requests", "teams", "created_at",
}


def assert_not_admin_refused(response) -> None:
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["type"] == "auth_error" and error["code"] == "401"
    assert error["message"].startswith("Authentication Error, Only proxy admin can be used")
