"""Security headers, the Content-Security-Policy of the pages, and access tokens."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from fastapi.testclient import TestClient

from geo_service.api.app import create_app
from geo_service.api.auth import TokenError, Tokens, file_line, new_token, read_tokens
from geo_service.api.security import INLINE
from geo_service.settings import ApiSettings
from geo_service.store.base import Access
from tests.api.live import live_server
from tests.chromium import chromium


@pytest.fixture(scope="module")
def client(built, build_dir) -> TestClient:
    return TestClient(create_app(ApiSettings(build_dir=build_dir)))


def _directives(header: str) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in header.split("; ")}


@pytest.mark.parametrize(
    "path", ["/maps/overview", "/embed/overview", "/docs", "/maps", "/?f=html"]
)
def test_pages_carry_a_strict_policy_naming_their_inline_blocks(client, path) -> None:
    r = client.get(path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = _directives(r.headers["content-security-policy"])
    scripts = csp["script-src"]
    assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts
    assert csp["object-src"] == ["'none'"] and csp["connect-src"] == ["'self'"]
    for kind, body in INLINE.findall(r.content):
        digest = f"'sha256-{base64.b64encode(hashlib.sha256(body).digest()).decode()}'"
        assert digest in csp[f"{kind.decode().lower()}-src"], (path, body[:80])
    assert re.search(rb"<script[^>]+src=\"https?://(?!testserver)", r.content) is None  # no CDN
    want = ["*"] if path.startswith("/embed/") else ["'self'"]
    assert csp["frame-ancestors"] == want
    assert any("tile.openstreetmap.org" in s for s in csp["img-src"])


def test_every_response_says_nosniff_and_its_referrer_policy(client) -> None:
    for path in ("/collections", "/tiles/risk_surface/0/0/0.png", "/nope", "/assets/nope.js"):
        r = client.get(path)
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert r.headers["referrer-policy"] == "strict-origin-when-cross-origin", path


def test_frame_ancestors_follow_the_setting(built, build_dir) -> None:
    settings = ApiSettings(build_dir=build_dir, frame_ancestors=("https://news.example",))
    r = TestClient(create_app(settings)).get("/embed/overview")
    assert _directives(r.headers["content-security-policy"])["frame-ancestors"] == [
        "https://news.example"
    ]


def test_unknown_routes_and_methods_answer_in_the_same_json(client) -> None:
    r = client.get("/no/such/thing")
    assert r.status_code == 404 and r.json()["code"] == "NotFound"
    r = client.delete("/collections/incidents")
    assert r.status_code == 405 and "only reads" in r.json()["description"]


def test_tokens_file_and_environment(tmp_path) -> None:
    analyst, admin = new_token(), new_token()
    path = tmp_path / "tokens"
    path.write_text(
        "# tokens of the field team\n"
        + file_line(analyst, Access.analyst, "Jane Doe")
        + "\n\n"
        + file_line(admin, Access.admin)
        + "  # the operator\n"
    )
    tokens = Tokens(read_tokens(path))
    assert tokens.access(None) is Access.anonymous
    assert tokens.access(f"Bearer {analyst}") is Access.analyst
    assert tokens.access(f"bearer  {admin} ") is Access.admin
    assert [t.label for t in tokens.tokens] == ["Jane Doe", ""]
    assert analyst not in path.read_text()  # only digests are kept
    viewer = new_token()
    entry = f"viewer:{file_line(viewer, Access.viewer).split()[0]}"
    assert Tokens(read_tokens(None, (entry,))).access(f"Bearer {viewer}") is Access.viewer
    path.write_text("sha256:abc analyst\n")
    with pytest.raises(TokenError, match=r"line 1: expected 'sha256:<64 hex digits>"):
        read_tokens(path)
    path.write_text(file_line(analyst, Access.analyst).replace("analyst", "boss") + "\n")
    with pytest.raises(TokenError, match="unknown role 'boss'"):
        read_tokens(path)
    with pytest.raises(TokenError, match="cannot read the tokens file"):
        read_tokens(tmp_path / "missing")


def test_an_unreadable_tokens_file_stops_the_service(tmp_path, build_dir) -> None:
    with pytest.raises(TokenError):
        create_app(ApiSettings(build_dir=build_dir, tokens_file=tmp_path / "missing"))


def test_every_digest_is_compared_in_constant_time(monkeypatch) -> None:
    """A guess is hashed, then compared with every configured digest by
    ``hmac.compare_digest``, matching or not: no early exit whose timing could be measured."""
    import geo_service.api.auth as auth

    made = [new_token() for _ in range(5)]
    entries = tuple(f"analyst:{file_line(t, Access.analyst).split()[0]}" for t in made)
    tokens = Tokens(read_tokens(None, entries))
    calls: list[int] = []
    real = auth.hmac.compare_digest

    def counted(a: bytes, b: bytes) -> bool:
        calls.append(len(a))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counted)
    for guess in (made[0], made[-1], "wrong", made[2][:-1]):
        calls.clear()
        try:
            tokens.access(f"Bearer {guess}")
        except auth.UnauthorizedError:
            pass
        assert calls == [32] * 5, guess  # five digests of 32 bytes, whatever the guess


def test_pages_run_under_their_policy_in_chromium(built, build_dir) -> None:
    with live_server(build_dir) as url, chromium() as browser:
        for path in ("/docs", "/maps/central-african-republic", "/embed/overview"):
            page = browser.new_page()
            violations: list[str] = []
            page.on(
                "console",
                lambda m, v=violations: (
                    v.append(m.text) if "Content Security Policy" in m.text else None
                ),
            )
            page.goto(url + path)
            page.wait_for_load_state("networkidle")
            assert not violations, (path, violations[:3])
            if path == "/docs":
                assert page.locator(".opblock").count() >= 10  # Swagger UI ran
            page.close()
