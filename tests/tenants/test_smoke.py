def test_models_list(alice_api):
    r = alice_api.get("/v1/models")
    assert r.status_code == 200, r.content
    assert [m["id"] for m in r.json()["data"]] == ["tiny-chat"]
