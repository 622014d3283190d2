"""``state_dir``: state and files survive a restart; unfinished turns finish after it."""

from __future__ import annotations

from emulator_helpers import client_for, wait_for

from airflow_provider_nairi.emulator import run_emulator

KEYS = [("nr_persistent_key", ["read", "write"])]


def test_state_survives_a_restart(tmp_path):
    with run_emulator(state_dir=tmp_path, keys=KEYS) as emu, client_for(emu, "nr_persistent_key") as api:
        agent = api.post("/agents", json={"name": "kept", "instructions": "[[delay:5]]"}).json()["data"]
        second = api.post("/agents", json={"name": "second", "instructions": ""}).json()["data"]
        artifact = api.post("/artifacts", files={"file": ("k.txt", b"kept bytes")}).json()["data"]
        pending = api.post("/conversations", json={"agent_id": agent["id"], "message": "late [[delay:0.2]]"})
        vault = api.post("/vaults", json={"name": "v"}, headers={"Idempotency-Key": "persist"}).json()["data"]
        revoked = emu.admin.create_key(scopes=("read",))
        emu.admin.revoke_key(revoked)
    with run_emulator(state_dir=tmp_path, keys=KEYS) as emu, client_for(emu, "nr_persistent_key") as api:
        assert [a["id"] for a in api.get("/agents").json()["data"]] == [agent["id"], second["id"]]
        assert api.get(f"/artifacts/{artifact['id']}/content").content == b"kept bytes"
        finished = wait_for(api, f"/conversations/{pending.json()['data']['id']}")
        assert finished["status"] == "completed"
        again = api.post("/vaults", json={"name": "v"}, headers={"Idempotency-Key": "persist"})
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.json()["data"] == vault
        with client_for(emu, revoked) as old:
            assert old.get("/me").status_code == 401
