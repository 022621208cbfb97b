"""Admin single sign-on, end to end (docs/sso.md): a real OIDC provider (django-oauth-toolkit, tests/idp)
and a live gateway pointed at it with password sign-in turned off, as real processes, and headless
Chromium clicking through the IdP's login form.

One IdP serves the test session; one gateway and one browser serve the module.
"""
from __future__ import annotations

import html
import os
import secrets
import shutil
import string
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest

from teams.sso import NOT_ALLOWED, PASSWORD_LOGIN_OFF, SIGN_IN_FAILED
from tests.e2e.conftest import MASTER_KEY, ROOT, _fresh_database_url, launch_gateway, wait_for
from tests.idp.launch import launch_idp
from tests.servers.process import free_port

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (requirements.txt)")
from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CLIENT_ID, CLIENT_SECRET = "gateway-admin", "idp-client-secret"
USERS = {
    "alice": {"password": "alice-pw", "groups": ["gateway-admins", "staff"]},
    "victor": {"password": "victor-pw", "groups": ["gateway-viewers"]},
    "paul": {"password": "paul-pw", "groups": ["staff"]},
}
LOCAL_ADMIN, LOCAL_PASSWORD = "local-root", "a-Long-local-passw0rd"


@pytest.fixture(scope="session")
def oidc_idp(e2e_dir: Path):
    """(IdP, gateway port): one IdP per test session. It must know the gateway's callback URL before
    the gateway starts, so the gateway's port is chosen here."""
    gateway_port = free_port()
    with launch_idp(e2e_dir, USERS, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                    redirect_uris=[f"http://127.0.0.1:{gateway_port}/oidc/callback/"]) as idp:
        yield idp, gateway_port


@pytest.fixture(scope="module")
def sso(e2e_dir: Path, oidc_idp):
    """(gateway, IdP): a live gateway with SSO against the IdP and password sign-in off."""
    idp, gateway_port = oidc_idp
    env = {**idp.gateway_env(),
           "GATEWAY_OIDC_ADMIN_GROUPS": "gateway-admins", "GATEWAY_OIDC_VIEWER_GROUPS": "gateway-viewers",
           "GATEWAY_ADMIN_PASSWORD_LOGIN": "false"}
    config = f"""
model_list:
  - model_name: fake-openai-endpoint
    litellm_params:
      model: fake/fake-openai-endpoint
litellm_settings:
  store_audit_logs: true
general_settings:
  master_key: {MASTER_KEY}
"""
    database_url, drop_database = _fresh_database_url(e2e_dir)
    try:
        with launch_gateway(e2e_dir, config, name="sso-gateway", env=env, port=gateway_port,
                            database_url=database_url) as gateway:
            # A password superuser in the gateway's database, to show a right password is refused too.
            subprocess.run([sys.executable, "manage.py", "createsuperuser", "--noinput", "--username", LOCAL_ADMIN,
                            "--email", "root@example.test"], cwd=ROOT, check=True, capture_output=True,
                           env={**os.environ, **env, "DATABASE_URL": database_url,
                                "GATEWAY_DATA_DIR": str(e2e_dir / "data"),
                                "DJANGO_SUPERUSER_PASSWORD": LOCAL_PASSWORD})
            yield gateway, idp
    finally:
        drop_database()


@pytest.fixture(scope="module")
def browser():
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.skip(f"Chromium/ChromeDriver not installed at {CHROMIUM}, {CHROMEDRIVER}: run bin/install-test-deps")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,900"):
        options.add_argument(argument)
    try:
        driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    except WebDriverException as exc:
        pytest.skip(f"Chromium could not be started: {exc.msg}")
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _wait(driver, condition, timeout: float = 15.0):
    return WebDriverWait(driver, timeout).until(condition)


def sso_sign_in(driver, base: str, username: str) -> None:
    """Click "Sign in with SSO" on the admin login page and sign in at the IdP."""
    driver.delete_all_cookies()
    driver.get(f"{base}/admin/login/?next=/admin/")
    driver.find_element(By.ID, "sso-login-button").click()
    _wait(driver, lambda d: d.find_elements(By.ID, "username"))
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(USERS[username]["password"])
    driver.find_element(By.ID, "submit").click()
    _wait(driver, lambda d: d.current_url.startswith(base) and "/oidc/" not in d.current_url)


def test_admin_group_signs_in_sees_keys_acts_as_itself_and_logs_out(sso, browser):
    gateway, _ = sso
    alias = f"sso-key-{secrets.token_hex(3)}"
    key = gateway.new_key(key_alias=alias)
    sso_sign_in(browser, gateway.base_url, "alice")
    assert browser.current_url == f"{gateway.base_url}/admin/"
    assert browser.title.startswith("Keys, teams and spend")
    assert browser.find_elements(By.ID, "logout-form")

    browser.get(f"{gateway.base_url}/admin/keys/virtualkey/")
    row = browser.find_element(By.XPATH, f"//tr[.//*[contains(text(), '{alias}')]]")
    # Admins may change rows: block the key with the admin action; the audit trail names alice.
    row.find_element(By.CSS_SELECTOR, "input.action-select").click()
    Select(browser.find_element(By.NAME, "action")).select_by_value("block_selected")
    browser.find_element(By.NAME, "index").click()
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "ul.messagelist"))
    info = gateway.admin("GET", "/key/info", params={"key": key}).json()
    assert info["info"]["blocked"] is True

    def alice_audit():
        response = gateway.admin("GET", "/audit", params={"changed_by": "alice"})
        assert response.status_code == 200, response.text
        return response.json()["audit_logs"]
    records = wait_for(alice_audit)
    assert [(r["changed_by"], r["action"], r["table_name"], r["updated_values"]) for r in records] == [
        ("alice", "blocked", "LiteLLM_VerificationToken", {"blocked": True})]

    # Log out with the admin's own button; the admin is closed again afterwards.
    browser.find_element(By.CSS_SELECTOR, "#logout-form button").click()
    _wait(browser, lambda d: "Logged out" in d.page_source)
    browser.get(f"{gateway.base_url}/admin/")
    assert browser.current_url.startswith(f"{gateway.base_url}/admin/login/")


def test_viewer_group_gets_a_read_only_admin(sso, browser):
    gateway, _ = sso
    alias = f"viewer-key-{secrets.token_hex(3)}"
    gateway.new_key(key_alias=alias)
    sso_sign_in(browser, gateway.base_url, "victor")
    browser.get(f"{gateway.base_url}/admin/keys/virtualkey/")
    assert alias in browser.page_source
    assert not browser.find_elements(By.CSS_SELECTOR, "a.addlink")
    assert not browser.find_elements(By.NAME, "action")
    browser.get(f"{gateway.base_url}/admin/keys/virtualkey/add/")
    assert "403" in browser.title or "Forbidden" in browser.page_source


def test_user_outside_the_admin_groups_is_refused(sso, browser):
    gateway, _ = sso
    sso_sign_in(browser, gateway.base_url, "paul")
    assert browser.current_url.startswith(f"{gateway.base_url}/admin/login/")
    assert NOT_ALLOWED.format(username="paul") in browser.find_element(By.CSS_SELECTOR, "ul.messagelist").text
    browser.get(f"{gateway.base_url}/admin/")
    assert browser.current_url.startswith(f"{gateway.base_url}/admin/login/")


def test_password_login_off_hides_the_form_and_refuses_a_password_post(sso, browser):
    gateway, _ = sso
    browser.delete_all_cookies()
    browser.get(f"{gateway.base_url}/admin/login/")
    assert browser.find_element(By.ID, "sso-login-button").text == "Sign in with SSO"
    assert not browser.find_elements(By.ID, "login-form")
    assert not browser.find_elements(By.NAME, "password")

    # A POST sent by hand, with a valid CSRF pair and the right password of a real superuser.
    token = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))
    with httpx2.Client(base_url=gateway.base_url, cookies={"csrftoken": token}) as client:
        response = client.post("/admin/login/?next=/admin/", data={
            "csrfmiddlewaretoken": token, "username": LOCAL_ADMIN, "password": LOCAL_PASSWORD, "next": "/admin/"})
        assert response.status_code == 200, response.text
        assert PASSWORD_LOGIN_OFF in response.text.replace("&ldquo;", "“").replace("&rdquo;", "”")
        assert "sessionid" not in response.cookies
        assert client.get("/admin/").status_code == 302


def idp_sign_in(idp_client: httpx2.Client, authorize_url: str, username: str, password: str) -> httpx2.Response:
    """Sign in on the IdP's login form as a browser would; the answer to the form's POST."""
    form = idp_client.get(authorize_url, follow_redirects=True)
    assert form.status_code == 200 and 'id="username"' in form.text, form.text
    return idp_client.post(str(form.url), data={
        "csrfmiddlewaretoken": idp_client.cookies["idp_csrftoken"], "username": username, "password": password,
        "next": parse_qs(urlsplit(str(form.url)).query)["next"][0]})


def test_wrong_password_at_the_idp_and_a_code_redeemed_by_someone_else_sign_nobody_in(sso):
    gateway, idp = sso
    with httpx2.Client(base_url=gateway.base_url) as browser_gw, httpx2.Client(base_url=idp.base_url) as browser_idp:
        start = browser_gw.get("/oidc/authenticate/", params={"next": "/admin/"})
        assert start.status_code == 302, start.text
        authorize_url = start.headers["location"]
        assert authorize_url.startswith(idp.discovery["authorization_endpoint"])

        refused = idp_sign_in(browser_idp, authorize_url, "alice", "not-alices-password")
        assert refused.status_code == 200 and 'id="error"' in refused.text

        # The right password: the IdP sends the browser back to the gateway with a one-time code.
        signed_in = idp_sign_in(browser_idp, authorize_url, "alice", USERS["alice"]["password"])
        callback = browser_idp.get(signed_in.headers["location"]).headers["location"]
        assert callback.startswith(f"{gateway.base_url}/oidc/callback/?")
        code = parse_qs(urlsplit(callback).query)["code"][0]

        # Someone who intercepted the code redeems it first; the IdP then refuses it to the gateway.
        stolen = httpx2.post(idp.discovery["token_endpoint"], data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": callback.split("?")[0],
            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
        assert stolen.status_code == 200 and "id_token" in stolen.json()
        answer = browser_gw.get(callback)
        assert answer.status_code == 302 and answer.headers["location"].startswith("/admin/login/"), answer.text
        assert SIGN_IN_FAILED in html.unescape(browser_gw.get(answer.headers["location"]).text)
        # The same callback again (its state is spent): the login page again, not an error page.
        replay = browser_gw.get(callback)
        assert replay.status_code == 302 and replay.headers["location"].startswith("/admin/login/"), replay.text
        assert browser_gw.get("/admin/").status_code == 302  # not signed in
