"""The remaining rows of the endpoint table: agents, vaults and secrets, env vars, scheduled jobs."""

from __future__ import annotations

from emulator_helpers import assert_error


def test_agent_crud(api):
    vault = api.post("/vaults", json={"name": "keys"}).json()["data"]
    created = api.post("/agents", json={"name": "crud", "instructions": "i", "vault_ids": [vault["id"]]})
    assert created.status_code == 201
    agent = created.json()["data"]
    assert agent["model"] == "nairi-default"
    assert agent["vault_ids"] == [vault["id"]]
    assert agent["id"].startswith("agt_")
    assert agent["created_at"].endswith("Z")
    assert api.get(f"/agents/{agent['id']}").json()["data"] == agent
    patched = api.patch(f"/agents/{agent['id']}", json={"instructions": "new", "model": "m2"}).json()["data"]
    assert (patched["name"], patched["instructions"], patched["model"]) == ("crud", "new", "m2")
    assert patched["updated_at"] >= agent["updated_at"]
    assert_error(api.patch(f"/agents/{agent['id']}", json={"id": "agt_other"}), 422, "validation_error")
    assert_error(api.patch(f"/agents/{agent['id']}", json={"name": None}), 422, "validation_error")
    assert_error(
        api.post("/agents", json={"name": "x", "instructions": "i", "vault_ids": ["vlt_no"]}),
        404,
        "not_found",
    )
    assert agent["id"] in [a["id"] for a in api.get("/agents", params={"limit": 200}).json()["data"]]
    assert api.delete(f"/agents/{agent['id']}").status_code == 204
    assert_error(api.get(f"/agents/{agent['id']}"), 404, "not_found")
    assert_error(api.delete(f"/agents/{agent['id']}"), 404, "not_found")


def test_vault_secrets_are_write_only(api):
    vault = api.post("/vaults", json={"name": "prod"}).json()["data"]
    assert vault["secret_names"] == []
    put = api.put(f"/vaults/{vault['id']}/secrets/DB_PASSWORD", json={"value": "hunter2"})
    assert put.status_code == 200
    assert set(put.json()["data"]) == {"name", "updated_at"}
    fetched = api.get(f"/vaults/{vault['id']}")
    assert fetched.json()["data"]["secret_names"] == ["DB_PASSWORD"]
    assert "hunter2" not in fetched.text
    assert "hunter2" not in api.get("/vaults", params={"limit": 200}).text
    assert api.delete(f"/vaults/{vault['id']}/secrets/DB_PASSWORD").status_code == 204
    assert_error(api.delete(f"/vaults/{vault['id']}/secrets/DB_PASSWORD"), 404, "not_found")
    assert_error(
        api.put(f"/vaults/{vault['id']}/secrets/BAD-NAME", json={"value": "v"}), 422, "validation_error"
    )
    assert_error(api.put(f"/vaults/{vault['id']}/secrets/OK", json={"value": 5}), 422, "validation_error")
    assert api.delete(f"/vaults/{vault['id']}").status_code == 204
    assert_error(api.get(f"/vaults/{vault['id']}"), 404, "not_found")


def test_env_vars(api):
    plain = api.put("/env-vars/REGION", json={"value": "eu"}).json()["data"]
    assert (plain["name"], plain["value"], plain["secret"]) == ("REGION", "eu", False)
    secret = api.put("/env-vars/TOKEN", json={"value": "s3cret", "secret": True})
    assert secret.json()["data"]["value"] is None
    listing = api.get("/env-vars", params={"limit": 200})
    assert "s3cret" not in listing.text
    assert {"REGION", "TOKEN"} <= {e["name"] for e in listing.json()["data"]}
    assert api.put("/env-vars/REGION", json={"value": "us"}).json()["data"]["value"] == "us"
    for name in ("REGION", "TOKEN"):
        assert api.delete(f"/env-vars/{name}").status_code == 204
    assert_error(api.delete("/env-vars/REGION"), 404, "not_found")


def test_scheduled_jobs(api, agent):
    body = {"name": "nightly", "agent_id": agent["id"], "message": "report", "cron": "0 2 * * *"}
    job = api.post("/scheduled-jobs", json=body).json()["data"]
    assert (job["timezone"], job["enabled"], job["last_run"]) == ("UTC", True, None)
    assert job["next_run_at"].endswith(":02:00:00Z") or "T02:00:00Z" in job["next_run_at"]
    assert api.get(f"/scheduled-jobs/{job['id']}").json()["data"] == job
    assert job in api.get("/scheduled-jobs", params={"limit": 200}).json()["data"]
    disabled = api.patch(f"/scheduled-jobs/{job['id']}", json={"enabled": False}).json()["data"]
    assert disabled["next_run_at"] is None
    run = api.post(f"/scheduled-jobs/{job['id']}/run")
    assert run.status_code == 202
    conversation = run.json()["data"]["conversation"]
    assert (conversation["agent_id"], conversation["status"]) == (agent["id"], "queued")
    assert (
        api.get(f"/scheduled-jobs/{job['id']}").json()["data"]["last_run"]["conversation_id"]
        == conversation["id"]
    )
    for bad in ({"cron": "@daily"}, {"cron": "* * * *"}, {"timezone": "Mars/Base"}):
        assert_error(api.post("/scheduled-jobs", json={**body, **bad}), 422, "validation_error")
    assert_error(
        api.patch(f"/scheduled-jobs/{job['id']}", json={"cron": "61 * * * *"}), 422, "validation_error"
    )
    assert api.delete(f"/scheduled-jobs/{job['id']}").status_code == 204
    assert_error(api.post(f"/scheduled-jobs/{job['id']}/run"), 404, "not_found")


def test_running_a_job_whose_agent_is_gone_is_a_conflict(api):
    doomed = api.post("/agents", json={"name": "doomed", "instructions": ""}).json()["data"]
    job = api.post(
        "/scheduled-jobs", json={"name": "j", "agent_id": doomed["id"], "message": "m", "cron": "* * * * *"}
    ).json()["data"]
    api.delete(f"/agents/{doomed['id']}")
    assert_error(api.post(f"/scheduled-jobs/{job['id']}/run"), 409, "conflict")
