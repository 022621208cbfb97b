from django.conf import settings


def test_admin_pages_carry_the_configured_title(admin_site):
    response = admin_site.get("/admin/")

    assert response.status_code == 200
    assert f'<a href="/admin/">{settings.GATEWAY_ADMIN_TITLE}</a>' in response.content.decode()
    assert f"| {settings.GATEWAY_ADMIN_TITLE}</title>" in response.content.decode()
