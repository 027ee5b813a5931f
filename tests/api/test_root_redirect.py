"""``/`` sends people to the annotator page instead of answering a 404."""


def test_root_redirects_to_the_annotator_page(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/ui/")
    page = client.get("/", follow_redirects=True)
    assert page.status_code == 200
    assert "text/html" in page.headers["Content-Type"]
    assert page.request.path == "/ui/"


def test_root_keeps_the_query_string(client):
    response = client.get("/?project=2")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/ui/?project=2")


def test_other_unknown_paths_still_answer_json_404(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
