"""access: admin token, authentication, role checks, minting tokens."""
import pytest

from cincer_service.service import Forbidden, NotFound, Unauthorized, access
from tests.support.service import new_project


def test_admin_token_is_created_once_or_registered(ctx):
    secret = access.ensure_admin_token(ctx, None)
    assert secret and access.ensure_admin_token(ctx, None) is None
    assert access.authenticate(ctx, secret).role == "admin"
    fixed = "a-token-from-automation"
    assert access.ensure_admin_token(ctx, fixed) == fixed
    assert access.ensure_admin_token(ctx, fixed) is None
    assert access.authenticate(ctx, fixed).project_id is None


def test_unknown_or_missing_token_is_unauthorized(ctx):
    for secret in (None, "", "not-a-token"):
        with pytest.raises(Unauthorized):
            access.authenticate(ctx, secret)


def test_roles_and_projects(ctx):
    admin = access.authenticate(ctx, access.ensure_admin_token(ctx, None))
    pid, other = new_project(ctx), new_project(ctx, name="other")
    token = access.create_token(ctx, pid, "ingest", "i")
    assert token["role"] == "ingest" and token["project_id"] == pid and token["token"]
    ingest = access.authenticate(ctx, token["token"])
    viewer = access.authenticate(ctx, access.create_token(ctx, pid, "viewer", "v")["token"])
    access.authorize(admin, None, "admin")
    access.authorize(admin, other, "annotator")
    access.authorize(ingest, pid, "admin", "ingest")
    access.authorize(viewer, pid)
    for principal, project, roles in ((ingest, None, ("admin",)), (ingest, other, ()),
                                      (viewer, pid, ("admin", "ingest")),
                                      (ingest, pid, ("admin", "annotator"))):
        with pytest.raises(Forbidden):
            access.authorize(principal, project, *roles)


def test_token_for_a_missing_project_is_not_found(ctx):
    with pytest.raises(NotFound):
        access.create_token(ctx, 999, "viewer", "v")


def test_secrets_never_look_like_command_line_options(ctx, monkeypatch):
    """base64url secrets may start with '-', which `--token SECRET` reads as an option
    (a CLI run failed on such a token)."""
    import itertools
    import secrets as stdlib
    count = itertools.count()
    monkeypatch.setattr(stdlib, "token_urlsafe", lambda n=None: f"-dash-{next(count)}")
    pid = new_project(ctx)
    for secret in (access.ensure_admin_token(ctx, None),
                   access.create_token(ctx, pid, "viewer", "v")["token"]):
        assert not secret.startswith("-")
        assert access.authenticate(ctx, secret).project_id in (None, pid)
