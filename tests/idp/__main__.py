"""Run the test identity provider as a real server:

    python -m tests.idp --port 8914 --users users.json --client-id gateway --client-secret s3cret \\
        --redirect-uri http://127.0.0.1:8000/oidc/callback/ [--data-dir DIR]

``users.json`` maps a username to ``{"password": ..., "groups": [...], "email": ..., "first_name": ...,
"last_name": ...}``; each user and group is created at start. The client is registered as a
confidential client for the authorization-code flow with RS256 ID tokens, consent skipped (a
first-party admin). ``--redirect-uri`` may be repeated. The SQLite database lives in ``--data-dir``
(default: a new temporary directory). Discovery: ``http://127.0.0.1:<port>/o/.well-known/openid-configuration``.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.idp", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--users", required=True, help="JSON file: username -> password, groups, email, names")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--redirect-uri", required=True, action="append", help="repeat for several")
    parser.add_argument("--data-dir", help="directory for the IdP's SQLite file (default: a new temporary one)")
    return parser.parse_args()


def seed(users: dict[str, dict], client_id: str, client_secret: str, redirect_uris: list[str]) -> None:
    from django.contrib.auth.models import Group, User
    from oauth2_provider.models import Application

    for username, spec in users.items():
        user = User.objects.create_user(username, email=spec.get("email", f"{username}@example.test"),
                                        password=spec["password"], first_name=spec.get("first_name", ""),
                                        last_name=spec.get("last_name", ""))
        user.groups.set([Group.objects.get_or_create(name=name)[0] for name in spec.get("groups", [])])
    Application.objects.create(
        name="gateway admin", client_id=client_id, client_secret=client_secret,
        client_type=Application.CLIENT_CONFIDENTIAL, authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=" ".join(redirect_uris), algorithm=Application.RS256_ALGORITHM, skip_authorization=True)


def main() -> None:
    args = parse_args()
    users = json.loads(Path(args.users).read_text())
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="test-idp-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    # Never the gateway's settings or database, whatever the environment says.
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.idp.settings"
    os.environ["TEST_IDP_DB"] = str(data_dir / "idp.sqlite3")

    import django
    from django.core.management import call_command
    from django.core.servers.basehttp import run
    from django.core.wsgi import get_wsgi_application

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    seed(users, args.client_id, args.client_secret, args.redirect_uri)
    print(f"test idp: issuer http://{args.host}:{args.port}/o, database {data_dir / 'idp.sqlite3'}", flush=True)
    run(args.host, args.port, get_wsgi_application(), threading=True)


if __name__ == "__main__":
    main()
