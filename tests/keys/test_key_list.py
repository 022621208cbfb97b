from keys.hashing import digest


def _generate(api, **fields) -> dict:
    response = api.post("/key/generate", fields, format="json")
    assert response.status_code == 200, response.json()
    return response.json()


def test_list_returns_key_hashes_newest_first_with_paging_fields(admin_api):
    older = _generate(admin_api)["token_id"]
    newer = _generate(admin_api)["token_id"]

    response = admin_api.get("/key/list")

    assert response.status_code == 200
    assert response.json() == {"keys": [newer, older], "total_count": 2, "current_page": 1, "total_pages": 1}


def test_list_without_keys_is_empty(admin_api):
    assert admin_api.get("/key/list").json() == {"keys": [], "total_count": 0, "current_page": 1, "total_pages": 1}


def test_list_with_return_full_object_returns_key_info(admin_api):
    generated = _generate(admin_api, key_alias="ci")

    body = admin_api.get("/key/list", {"return_full_object": "true"}).json()

    assert body["keys"] == [{k: v for k, v in generated.items() if k != "key"}]


def test_list_filters_by_user_id(admin_api):
    alices = _generate(admin_api, user_id="alice")["token_id"]
    _generate(admin_api, user_id="bob")

    assert admin_api.get("/key/list", {"user_id": "alice"}).json()["keys"] == [alices]


def test_list_filters_by_team_id(admin_api):
    admin_api.post("/team/new", {"team_id": "t1"}, format="json")
    teams = _generate(admin_api, team_id="t1")["token_id"]
    _generate(admin_api)

    assert admin_api.get("/key/list", {"team_id": "t1"}).json()["keys"] == [teams]


def test_list_filters_by_key_alias(admin_api):
    ci = _generate(admin_api, key_alias="ci")["token_id"]
    _generate(admin_api, key_alias="other")

    assert admin_api.get("/key/list", {"key_alias": "ci"}).json()["keys"] == [ci]


def test_list_pages_by_page_and_size(admin_api):
    tokens = [_generate(admin_api)["token_id"] for _ in range(5)]

    body = admin_api.get("/key/list", {"page": 2, "size": 2}).json()

    assert body == {"keys": [tokens[2], tokens[1]], "total_count": 5, "current_page": 2, "total_pages": 3}


def test_list_past_the_last_page_is_empty(admin_api):
    _generate(admin_api)

    body = admin_api.get("/key/list", {"page": 3, "size": 10}).json()

    assert body["keys"] == [] and body["total_count"] == 1


def test_list_refuses_a_size_over_100(admin_api):
    response = admin_api.get("/key/list", {"size": 500})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "size"


def test_list_refuses_a_page_that_is_not_a_number(admin_api):
    response = admin_api.get("/key/list", {"page": "first"})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "page"


def test_a_non_admin_key_lists_only_its_own_users_keys(admin_api, api_as):
    raw = _generate(admin_api, user_id="alice")["key"]
    second = _generate(admin_api, user_id="alice")["token_id"]
    _generate(admin_api, user_id="bob")

    body = api_as(raw).get("/key/list", {"user_id": "bob"}).json()

    assert body["keys"] == [second, digest(raw)] and body["total_count"] == 2


def test_a_non_admin_key_without_a_user_lists_only_itself(admin_api, api_as):
    raw = _generate(admin_api)["key"]
    _generate(admin_api)

    assert api_as(raw).get("/key/list").json()["keys"] == [digest(raw)]


def test_list_without_an_api_key_is_401(anonymous_api):
    response = anonymous_api.get("/key/list")

    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Authentication Error, No api key passed in."
