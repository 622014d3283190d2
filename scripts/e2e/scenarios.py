"""The scenarios of ``make e2e``: one phase per executor, each checked through Airflow's REST API, the
emulator's state and admin request log, and the component logs."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow_api import AirflowApi
from events_scenario import ensure_job, event_trigger_restart
from harness import Context
from stack import E2EError, log, wait_until, watchdogs

CONN_ID = "nairi_default"
DASHBOARD_URL = "https://dashboard.e2e.example"
RUN_TIMEOUT = 240
#: What Airflow 3.3.2's scheduler logs when it fails a resumed task on a late executor report (docs/e2e.md).
EXECUTOR_RACE = "finished with state success, but the task instance's state attribute is"
ACTIVE = {"queued", "running"}


def script(*replies: Any) -> str:
    """The emulator's ``[[replies:...]]`` directive: the agent's next replies, in order (docs/emulator.md)."""
    return f"[[replies:{json.dumps(list(replies))}]]"


@dataclass(frozen=True)
class Example:
    """What the scenario "example DAGs" checks of one example DAG; a task instance is named "task" or
    "task[map_index]"."""

    #: The run's conf (the agent's scripted replies: the AI-workflow examples need the right ones).
    conf: dict[str, Any] = field(default_factory=dict)
    #: Waits that must have run in the triggerer.
    deferred: tuple[str, ...] = ()
    #: Task instances whose "Nairi conversation" link must lead to their conversation.
    links: tuple[str, ...] = ()
    #: Final states other than success that must be so (the branches not taken: skipped, never failed).
    states: dict[str, str] = field(default_factory=dict)
    #: Fields of a task instance's return value (XCom) and the value each must have.
    returns: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Human-in-the-loop answers given through the REST API: task id -> (option, the form's fields).
    answers: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    #: The DAG the run's asset events schedule (it must run on them and succeed).
    consumer: str = ""


INVOICE = {"vendor": "ACME", "total": 12.3, "currency": "EUR"}
BRANCHES = ("route.invoice", "route.contract", "route.other")
#: Per mapped document of nairi_agent_branching: its scripted replies and the branches they choose.
DOCUMENTS = [
    ("Invoice 42 from ACME. " + script("route.invoice"), ["route.invoice"]),
    ("Services agreement. " + script("It is a contract.", "route.contract"), ["route.contract"]),  # repaired
    ("Invoice 43 and its amendment. " + script(["route.invoice", "route.contract"]), BRANCHES[:2]),
]
REVIEW_SKIPPED = ("review.revise_1", "review.review_2", "review.revise_2", "review.review_3")

EXAMPLES: dict[str, Example] = {
    "nairi_conversation": Example(deferred=("ask", "follow_up"), links=("ask", "follow_up")),
    "nairi_mapped_prompts": Example(deferred=("ask[0]", "ask[1]", "ask[2]"), links=("ask[0]", "ask[2]")),
    "nairi_content": Example(deferred=("wait_until_ready", "ask_agent"), links=("ask_agent",)),
    "nairi_org_as_code": Example(deferred=("run_now",), links=("run_now",)),
    # @task.nairi with output_type: the first reply is no JSON, the repair turn's is a valid Invoice.
    "nairi_typed_reply": Example(
        conf={"document": "ACME invoice, 12.30 EUR. " + script("Sure! ACME, 12.30 EUR.", INVOICE)},
        deferred=("extract",),
        links=("extract",),
        returns={"extract": {"output": INVOICE, "reply": json.dumps(INVOICE), "turn": 2}},
    ),
    # @task.nairi_branch, unmapped (triage) and per mapped instance of a task group (route.classify).
    "nairi_agent_branching": Example(
        conf={"batch_note": "Invoices only. " + script("routine"), "documents": [d for d, _ in DOCUMENTS]},
        deferred=("triage", "route.classify[0]", "route.classify[1]", "route.classify[2]"),
        links=("triage", "route.classify[1]"),
        states={"urgent": "skipped"}
        | {
            f"{branch}[{index}]": "skipped"
            for index, (_, chosen) in enumerate(DOCUMENTS)
            for branch in BRANCHES
            if branch not in chosen
        },
        returns={"triage": {"output": ["routine"]}}
        | {
            f"route.classify[{index}]": {"output": list(chosen)}
            for index, (_, chosen) in enumerate(DOCUMENTS)
        },
    ),
    # The review rejected through Airflow's HITL API: what follows is skipped, the run succeeds.
    # (Answered in the browser: the scenario "review answered in the browser".)
    "nairi_review_loop": Example(
        conf={"topic": "typed replies " + script("Draft one")},
        deferred=("draft",),
        links=("draft",),
        answers={"review.review_1": ("Reject", {"changes": ""})},
        states=dict.fromkeys((*REVIEW_SKIPPED, "review.approved", "publish"), "skipped"),
        returns={"review.review_1": {"decision": "reject", "round": 1}},
    ),
    # Its download's asset events schedule nairi_asset_consumer (data-aware scheduling).
    "nairi_asset_producer": Example(consumer="nairi_asset_consumer"),
}
E2E_DAGS = ["nairi_e2e_deferred", "nairi_e2e_on_worker", "nairi_e2e_events"]
CONSUMERS = [example.consumer for example in EXAMPLES.values() if example.consumer]


def run_phase(ctx: Context, executor: str, first: bool) -> None:
    """Start Airflow with ``executor``, run the scenarios, stop Airflow (the databases keep running)."""
    airflow = ctx.airflow
    airflow.env["AIRFLOW__CORE__EXECUTOR"] = executor
    label = ctx.executor
    log(
        f"== {executor}: api-server, scheduler, dag-processor, triggerer"
        + (", celery worker" * (label == "celery"))
    )
    watchdogs[:] = [airflow.check_alive]
    try:
        airflow.start_api_server()
        for component in ("scheduler", "dag-processor", "triggerer"):
            airflow.start(component)
        if label == "celery":
            airflow.start("celery worker")
        api = AirflowApi(airflow.api_url)
        if first:
            prepare_examples(api)
            # The event scenario's job exists from the start: the watcher on a job not found yet backs off
            # (doubling up to 10 min), and would only see the job minutes after the scenario created it.
            ensure_job(ctx.nairi)
            if ctx.wanted("connection form"):  # the DAGs run even when it fails: they show the consequences
                ctx.harness.run("connection form", label, lambda: connection_form(ctx, api))
            else:
                create_connection_by_api(ctx, api)
        if not ctx.harness.run(
            "DAGs parsed", label, lambda: api.wait_for_dags([*EXAMPLES, *CONSUMERS, *E2E_DAGS], timeout=180)
        ):
            return
        steps = [
            ("example DAGs", lambda: example_dags(ctx, api, label)),
            ("kill triggerer mid-wait", lambda: kill_triggerer(ctx, api)),
            ("kill worker mid-wait", lambda: kill_worker(ctx, api, label)),
            ("clear deferred task", lambda: clear_deferred(ctx, api)),
            ("mark deferred task failed", lambda: mark_failed(ctx, api)),
            ("mark deferred task success", lambda: mark_success(ctx, api)),
        ]
        if label == "local":  # what does not depend on the executor: proved once
            steps.append(("review answered in the browser", lambda: review_in_browser(ctx, api)))
            steps.append(
                ("event trigger across a triggerer restart", lambda: event_trigger_restart(ctx, api))
            )
        for name, step in steps:
            if ctx.wanted(name):
                ctx.harness.run(name, label, step)
    finally:
        watchdogs.clear()
        airflow.stop_components()


def prepare_examples(api: AirflowApi) -> None:
    """What nairi_org_as_code reads besides the Nairi connection: a connection and a Variable."""
    api.call(
        "POST",
        "/connections",
        json={"connection_id": "nairi_example_db", "conn_type": "generic", "password": "e2e-db-password"},
        expect=(201, 409),
    )
    api.call(
        "POST", "/variables", json={"key": "nairi_example_crm_token", "value": "e2e-crm"}, expect=(201, 409)
    )


def create_connection_by_api(ctx: Context, api: AirflowApi) -> None:
    """Only when the browser scenario is skipped (``--scenarios`` without it)."""
    api.call(
        "POST",
        "/connections",
        json={
            "connection_id": CONN_ID,
            "conn_type": "nairi",
            "host": ctx.emulator.base_url,
            "password": ctx.emulator.api_key,
            "extra": json.dumps({"dashboard_url": DASHBOARD_URL}),
        },
        expect=(201, 409),
    )


def connection_form(ctx: Context, api: AirflowApi) -> None:
    import browser  # noqa: PLC0415 (selenium only when the browser scenario runs)

    browser.create_connection_in_form(ctx, api, CONN_ID, DASHBOARD_URL)


# -- examples ---------------------------------------------------------------------------------------------


def ti_key(ti: dict[str, Any]) -> str:
    return ti["task_id"] if ti["map_index"] < 0 else f"{ti['task_id']}[{ti['map_index']}]"


def split_key(key: str) -> tuple[str, int]:
    match = re.fullmatch(r"(.+)\[(\d+)\]", key)
    return (match.group(1), int(match.group(2))) if match else (key, -1)


def watch_runs(
    api: AirflowApi, runs: dict[str, str], timeout: float, meanwhile: Callable[[], None] | None = None
) -> dict[str, dict[str, set[str]]]:
    """Poll every run until all ended (calling ``meanwhile`` at each poll); per run, every state each task
    instance was seen in."""
    seen: dict[str, dict[str, set[str]]] = {dag_id: {} for dag_id in runs}
    pending = dict(runs)
    deadline = time.monotonic() + timeout
    while pending:
        for watchdog in watchdogs:
            watchdog()
        if time.monotonic() > deadline:
            raise E2EError(f"runs still going after {timeout:.0f} s: {pending}; states seen: {seen}")
        for dag_id, run_id in list(pending.items()):
            for ti in api.task_instances(dag_id, run_id):
                seen[dag_id].setdefault(ti_key(ti), set()).add(str(ti["state"]))
            state = api.run_state(dag_id, run_id)
            if state in ("success", "failed"):
                seen[dag_id]["<run>"] = {state}
                del pending[dag_id]
        if meanwhile:
            meanwhile()
        time.sleep(1)  # each poll is two API calls per run: gentle on the api-server of a 2-core machine
    return seen


def example_dags(ctx: Context, api: AirflowApi, label: str) -> None:
    consumed = {consumer: run_ids(api, consumer) for consumer in CONSUMERS}
    runs = {dag_id: api.trigger(dag_id, example.conf) for dag_id, example in EXAMPLES.items()}
    seen = watch_runs(api, runs, RUN_TIMEOUT, meanwhile=lambda: answer_reviews(ctx, api, runs))
    problems = []
    for dag_id, run_id in runs.items():
        if seen[dag_id]["<run>"] != {"success"}:
            problems.append(failure_detail(ctx, api, dag_id, run_id))
            continue
        problems += check_deferred(ctx, api, dag_id, run_id)
        problems += check_links(api, dag_id, run_id)
        problems += check_outcome(api, dag_id, run_id)
        problems += retries_taken(ctx, api, dag_id, run_id)
        if consumer := EXAMPLES[dag_id].consumer:
            problems += check_consumer(api, consumer, consumed[consumer], producer_run=run_id)
    if seen["nairi_conversation"]["<run>"] == {"success"}:
        run_id = runs["nairi_conversation"]
        conversation_id = api.xcom("nairi_conversation", run_id, "ask", "conversation_id")
        deferred, trigger_log = deferral(ctx, "nairi_conversation", run_id)
        timing = measured(
            lambda: first_poll(
                ctx, conversation_id, since=deferred, since_what="the deferral", trigger_log=trigger_log
            )
        )
        ctx.harness.notes.append(f"first poll ({label}, a fresh triggerer's first triggers): {timing}")
    if label == "local" and seen["nairi_conversation"]["<run>"] == {"success"}:  # the task page, once
        import browser  # noqa: PLC0415

        run_id = runs["nairi_conversation"]
        conversation_id = api.xcom("nairi_conversation", run_id, "ask", "conversation_id")
        expected = f"{DASHBOARD_URL}/conversations/{conversation_id}"
        problems += browser.task_page(ctx, "nairi_conversation", run_id, "ask", expected)
    if problems:
        raise E2EError("; ".join(problems))


def check_deferred(ctx: Context, api: AirflowApi, dag_id: str, run_id: str) -> list[str]:
    """Each waiting task deferred (its log, read through the API, says so) and its trigger ran in the
    triggerer: the triggerer writes the trigger's lines to ``attempt=N.log.trigger.<triggerer job id>.log``
    next to the task's log, and that job is a TriggererJob."""
    problems = []
    for key in EXAMPLES[dag_id].deferred:
        task_id, map_index = split_key(key)
        try_number = 1
        task_log = try_log(ctx, api, dag_id, run_id, key, try_number=try_number)
        if "Pausing task as DEFERRED" not in task_log:
            problems.append(f"{dag_id}.{key}: its log has no 'Pausing task as DEFERRED'")
        folder = ctx.task_log_folder(dag_id, run_id, task_id, map_index)
        trigger_logs = sorted(folder.glob(f"attempt={try_number}.log.trigger.*.log"))
        text = "\n".join(path.read_text(errors="replace") for path in trigger_logs)
        if "Trigger fired event" not in text:
            name = f"{dag_id}/{run_id}/{task_id}/{map_index}/{try_number} ("
            if not trigger_resumed_without_its_last_lines(task_log, text) or not fired_in_triggerer_log(
                ctx, name
            ):
                problems.append(f"{dag_id}.{key}: no trigger log with 'Trigger fired event' in {folder}")
                continue
            ctx.harness.notes.append(
                f"{dag_id}.{key}: the trigger's own log stops before 'Trigger fired event', yet the task "
                "resumed from its event and Airflow 3.3.2 wrote that line to the triggerer's log instead"
            )
        for path in trigger_logs:
            job_id = path.name.rsplit(".", 2)[-2]
            job = api.call("GET", "/jobs", params={"job_type": "TriggererJob", "limit": 100})["jobs"]
            if not any(str(j["id"]) == job_id for j in job):
                problems.append(f"{dag_id}.{key}: {path.name} was not written by a triggerer job")
    return problems


def fired_in_triggerer_log(ctx: Context, name: str) -> bool:
    """Whether a triggerer's own log (``logs/triggerer*.log``) has "Trigger fired event" for the trigger
    ``name`` (``dag_id/run_id/task_id/map_index/try (``): where Airflow 3.3.2's supervisor writes the lines of
    a trigger it reads after it closed that trigger's file (once the runner reported the trigger finished)."""
    return any(
        "Trigger fired event" in line and name in line
        for path in (ctx.out / "logs").glob("triggerer*.log")
        for line in path.read_text(errors="replace").splitlines()
    )


def trigger_resumed_without_its_last_lines(task_log: str, trigger_log: str) -> bool:
    """True when the trigger ran in the triggerer (its log has the triggerer's "starting" line) and the task
    resumed after its deferral (the try's log runs the task again after "Pausing task as DEFERRED"), though
    the trigger's log has no "Trigger fired event". Seen once in 20 triggers in a fresh-clone CI run: the
    triggerer's file of one trigger ended after its first poll while the task resumed with the reply."""
    deferred_at = task_log.find("Pausing task as DEFERRED")
    return ") starting" in trigger_log and deferred_at >= 0 and "Pre Execute" in task_log[deferred_at:]


def try_log(ctx: Context, api: AirflowApi, dag_id: str, run_id: str, key: str, *, try_number: int) -> str:
    """A try's log read through the API; the file when the API does not find that try (Airflow 3.3.2 answers
    404 "TaskInstance not found" for the try its executor race failed, once the retry runs)."""
    task_id, map_index = split_key(key)
    try:
        return api.log_text(dag_id, run_id, task_id, try_number, map_index)
    except E2EError as error:
        if ": 404 " not in str(error):
            raise
        path = ctx.task_log_folder(dag_id, run_id, task_id, map_index) / f"attempt={try_number}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def check_links(api: AirflowApi, dag_id: str, run_id: str) -> list[str]:
    problems = []
    for key in EXAMPLES[dag_id].links:
        task_id, map_index = split_key(key)
        try:
            conversation_id = api.xcom(dag_id, run_id, task_id, "conversation_id", map_index)
            link = api.links(dag_id, run_id, task_id, map_index).get("Nairi conversation")
        except E2EError as exc:
            problems.append(f"{dag_id}.{key}: {exc}")
            continue
        expected = f"{DASHBOARD_URL}/conversations/{conversation_id}"
        if link != expected:
            problems.append(f"{dag_id}.{key}: link 'Nairi conversation' is {link!r}, expected {expected!r}")
    return problems


def answer_reviews(ctx: Context, api: AirflowApi, runs: dict[str, str]) -> None:
    """Answer the runs' pending human-in-the-loop requests as their examples script it (each once the
    scheduler took its pause: see :func:`pause_taken`)."""
    for dag_id, run_id in runs.items():
        answers = EXAMPLES[dag_id].answers
        for request in api.pending_reviews(dag_id, run_id) if answers else ():
            task_id = request["task_instance"]["task_id"]
            if task_id not in answers:
                raise E2EError(f"{dag_id}.{task_id} asks a human, and the harness has no answer for it")
            if not pause_taken(ctx, dag_id, run_id, task_id):
                continue
            option, fields = answers[task_id]
            api.answer_review(dag_id, run_id, task_id, option=option, fields=fields)
            log(f"{dag_id}.{task_id}: answered {option!r} through the REST API")


def pause_taken(ctx: Context, dag_id: str, run_id: str, task_id: str) -> bool:
    """Whether the scheduler has taken the executor's report of the try that paused to await a human (its
    "TaskInstance Finished: ... state=awaiting_input" line). Airflow 3.3.2 fails a task answered before that:
    the resumed try is queued when the late report comes (docs/e2e.md, Known limits)."""
    finished = f"TaskInstance Finished: dag_id={dag_id}, task_id={task_id}, run_id={run_id}, map_index=-1,"
    log_file = ctx.airflow.components["scheduler"].log_file
    return any(
        finished in line and "state=awaiting_input" in line
        for line in log_file.read_text(errors="replace").splitlines()
    )


def check_outcome(api: AirflowApi, dag_id: str, run_id: str) -> list[str]:
    """The example's expected final states (the branches not taken skipped) and return values."""
    example = EXAMPLES[dag_id]
    states = {ti_key(ti): ti["state"] for ti in api.task_instances(dag_id, run_id)}
    problems = [
        f"{dag_id}.{key} is {states.get(key, '<missing>')}, expected {state}"
        for key, state in example.states.items()
        if states.get(key) != state
    ]
    for key, expected in example.returns.items():
        task_id, map_index = split_key(key)
        returned = api.xcom(dag_id, run_id, task_id, "return_value", map_index) or {}
        wrong = {name: returned.get(name) for name, value in expected.items() if returned.get(name) != value}
        if wrong:
            problems.append(f"{dag_id}.{key} returned {wrong}, expected {expected}")
    return problems


def run_ids(api: AirflowApi, dag_id: str) -> set[str]:
    runs = api.call("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]
    return {str(run["dag_run_id"]) for run in runs}


def check_consumer(api: AirflowApi, consumer: str, before: set[str], *, producer_run: str) -> list[str]:
    """The producer's asset events scheduled a run of ``consumer`` (by the scheduler, no trigger); it
    succeeded and verified every file the producer downloaded against the sha256 its event carried."""

    def new_run() -> str | None:
        return next(iter(run_ids(api, consumer) - before), None)

    try:
        run_id = wait_until(f"{consumer} runs on the asset events of {producer_run}", new_run, 60, 1)
        if watch_runs(api, {consumer: run_id}, RUN_TIMEOUT)[consumer]["<run>"] != {"success"}:
            return [f"{consumer} {run_id} (scheduled on the asset events) failed"]
        uploaded = api.xcom("nairi_asset_producer", producer_run, "upload", "return_value")
        checked = api.xcom(consumer, run_id, "verify", "return_value")
    except E2EError as exc:
        return [str(exc)]
    if sorted(c["artifact_id"] for c in checked) != sorted(u["id"] for u in uploaded) or not all(
        c["ok"] for c in checked
    ):
        return [f"{consumer} {run_id} checked {checked}, expected each of {uploaded} ok"]
    return []


# -- review in the browser --------------------------------------------------------------------------------

REVIEW_DAG = "nairi_review_loop"
#: The agent's drafts (scripted) and what the reviewer types in the browser.
DRAFTS = ("Draft one: typed replies repair themselves.", "Draft two: replies are typed.")
CHANGES = "Shorter, please: one sentence."


def review_in_browser(ctx: Context, api: AirflowApi) -> None:
    """A reviewer answers nairi_review_loop in Airflow's UI: from Browse → Required Actions to round 1's
    form (it shows the agent's draft), Request changes with a comment; round 2's form shows the revised
    draft, Approve with the field left empty. The comment was the conversation's next turn, the approved
    draft is what the group returns, and the rounds not needed are skipped."""
    import browser  # noqa: PLC0415 (selenium only when a browser scenario runs)

    run_id = api.trigger(REVIEW_DAG, {"topic": "typed replies " + script(*DRAFTS)})
    with browser.review_form(ctx) as form:
        for number, (draft, option, changes) in enumerate(
            [(DRAFTS[0], "Request changes", CHANGES), (DRAFTS[1], "Approve", "")], 1
        ):
            task_id = f"review.review_{number}"
            awaiting_review(ctx, api, run_id, task_id)
            if number == 1:
                form.open_from_list(run_id, task_id, shot="required-actions")
            else:
                form.open_task(REVIEW_DAG, run_id, task_id)
            text, code_blocks = form.shown()
            if f"round {number} of 3" not in text or code_blocks != [draft]:
                form.screenshot(f"review-round-{number}")
                raise E2EError(
                    f"{task_id}'s form shows the code blocks {code_blocks} (expected the latest draft "
                    f"{draft!r}), text: {text[:600]!r}"
                )
            form.answer(option, changes, shot=f"review-round-{number}")
    expect_success(ctx, api, REVIEW_DAG, run_id)
    if problems := retries_taken(ctx, api, REVIEW_DAG, run_id):
        raise E2EError("; ".join(problems))
    states = {ti_key(ti): ti["state"] for ti in api.task_instances(REVIEW_DAG, run_id)}
    expected = dict.fromkeys(("review.revise_2", "review.review_3"), "skipped")
    expected |= dict.fromkeys(("review.review_1", "review.revise_1", "review.review_2", "publish"), "success")
    if wrong := {key: states.get(key) for key, state in expected.items() if states.get(key) != state}:
        raise E2EError(f"{REVIEW_DAG} {run_id}: task states {wrong}, expected {expected}")
    approved = api.xcom(REVIEW_DAG, run_id, "review.approved", "return_value")
    conversation_id = api.xcom(REVIEW_DAG, run_id, "draft", "return_value")["conversation_id"]
    if (approved["reply"], approved["turn"], approved["conversation_id"]) != (DRAFTS[1], 2, conversation_id):
        raise E2EError(f"the group returned {approved}, expected turn 2 of {conversation_id}: {DRAFTS[1]!r}")
    asked = [m["content"] for m in ctx.nairi.list_messages(conversation_id) if m["role"] == "user"]
    if asked[1:] != [CHANGES]:
        raise E2EError(f"the conversation's turns after the first asked {asked[1:]}, expected [{CHANGES!r}]")


def awaiting_review(ctx: Context, api: AirflowApi, run_id: str, task_id: str) -> None:
    """Until ``task_id`` awaits a human (Airflow 3.3's ``awaiting_input``: no worker slot, no trigger), its
    request is listed as pending, and the scheduler took its pause (:func:`pause_taken`)."""

    def awaiting() -> bool:
        state = api.task_instance(REVIEW_DAG, run_id, task_id)["state"]
        if state in ("success", "failed", "skipped", "upstream_failed"):
            raise E2EError(
                f"{task_id} is {state} before anyone answered: "
                + failure_detail(ctx, api, REVIEW_DAG, run_id)
            )
        pending = [r["task_instance"]["task_id"] for r in api.pending_reviews(REVIEW_DAG, run_id)]
        return (
            state == "awaiting_input" and task_id in pending and pause_taken(ctx, REVIEW_DAG, run_id, task_id)
        )

    wait_until(f"{REVIEW_DAG}.{task_id} awaits a human", awaiting, 120, 1)


# -- faults -----------------------------------------------------------------------------------------------


def start_waiting(
    ctx: Context, api: AirflowApi, dag_id: str, conf: dict[str, Any], *, state: str, title: str = "{run_id}"
) -> tuple[str, dict]:
    """Trigger ``dag_id``; return once its ``ask`` is in ``state``, its conversation (titled ``title``) exists
    in the emulator and, when deferred, the triggerer runs its trigger (what a user sees before acting on a
    waiting task)."""
    run_id = api.trigger(dag_id, conf)

    def ask_in_state() -> dict[str, Any] | None:
        ti = api.task_instance(dag_id, run_id, "ask")
        if ti["state"] == state:
            return ti
        if api.run_state(dag_id, run_id) in ("success", "failed"):
            raise E2EError(f"ask never {state}: " + failure_detail(ctx, api, dag_id, run_id))
        return None

    ti = wait_until(f"{dag_id}.ask {state}", ask_in_state, 120, 0.3)
    title = title.format(run_id=run_id)
    wait_until(f"{dag_id} {run_id}: its conversation in the emulator", lambda: ctx.conversations(title), 30)
    if state == "deferred":
        wait_until(
            "the triggerer runs the trigger", lambda: trigger_logs(ctx, dag_id, run_id, "starting"), 30
        )
    return run_id, ti


def trigger_logs(ctx: Context, dag_id: str, run_id: str, text: str, try_number: int = 1) -> list[Path]:
    """The trigger logs (one per triggerer job that ran it) of ``ask``'s try that contain ``text``."""
    folder = ctx.task_log_folder(dag_id, run_id, "ask")
    paths = sorted(folder.glob(f"attempt={try_number}.log.trigger.*.log"))
    return [path for path in paths if text in path.read_text(errors="replace")]


def one_conversation(ctx: Context, run_id: str, status: str = "completed") -> dict[str, Any]:
    conversations = ctx.conversations(run_id)
    if len(conversations) != 1:
        raise E2EError(f"{len(conversations)} conversations for {run_id} in the emulator, expected one")
    if conversations[0]["status"] != status:
        raise E2EError(
            f"conversation {conversations[0]['id']} is {conversations[0]['status']}, expected {status}"
        )
    return conversations[0]


def expect_success(ctx: Context, api: AirflowApi, dag_id: str, run_id: str) -> None:
    if watch_runs(api, {dag_id: run_id}, RUN_TIMEOUT)[dag_id]["<run>"] != {"success"}:
        raise E2EError(failure_detail(ctx, api, dag_id, run_id))


def failure_detail(ctx: Context, api: AirflowApi, dag_id: str, run_id: str) -> str:
    """Each task instance that did not succeed, its try, and the last error line of its log (or else the
    scheduler's last error about the run: Airflow itself may have failed it)."""
    problems = []
    for ti in api.task_instances(dag_id, run_id):
        if ti["state"] == "success":
            continue
        problems.append(f"{ti_key(ti)} {ti['state']} at try {ti['try_number']}")
        if ti["state"] == "failed":
            text = api.log_text(dag_id, run_id, ti["task_id"], ti["try_number"], ti["map_index"])
            errors = [line for line in text.splitlines() if line.startswith("error")]
            if not errors:
                errors = [f"scheduler: {line}" for line in scheduler_errors(ctx, run_id)]
            problems[-1] += f" ({errors[-1][:400] if errors else 'no error in its log or the scheduler log'})"
    return f"{dag_id} {run_id} failed: " + "; ".join(problems)


def scheduler_errors(ctx: Context, run_id: str) -> list[str]:
    """The error lines of the running scheduler's log about ``run_id``."""
    scheduler = ctx.airflow.components.get("scheduler")
    path = scheduler.log_file if scheduler else ctx.out / "logs" / "scheduler.log"
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    return [line for line in lines if "[error" in line and run_id in line]


def retries_taken(ctx: Context, api: AirflowApi, dag_id: str, run_id: str) -> list[str]:
    """Task instances that succeeded only at a later try (the deployment's ``default_task_retries`` is 1): a
    note each when Airflow's executor race failed the try before (docs/e2e.md, Known limits); what else
    failed it, as problems."""
    problems = []
    for ti in api.task_instances(dag_id, run_id):
        if ti["try_number"] <= 1 or ti["state"] != "success":
            continue
        where = f" map_index={ti['map_index']} [" if ti["map_index"] >= 0 else " ["
        instance = f"<TaskInstance: {dag_id}.{ti['task_id']} {run_id}{where}"
        if any(instance in line and EXECUTOR_RACE in line for line in scheduler_errors(ctx, run_id)):
            ctx.harness.notes.append(
                f"{ctx.executor}: {dag_id}.{ti_key(ti)} failed by Airflow's executor race at try "
                f"{ti['try_number'] - 1}, succeeded at try {ti['try_number']} (the same conversation)"
            )
        else:
            text = try_log(ctx, api, dag_id, run_id, ti_key(ti), try_number=ti["try_number"] - 1)
            errors = [line for line in text.splitlines() if line.startswith("error")] or ["no error logged"]
            problems.append(f"{dag_id}.{ti_key(ti)} needed try {ti['try_number']}: {errors[-1][:300]}")
    return problems


def kill_triggerer(ctx: Context, api: AirflowApi) -> None:
    """SIGKILL the triggerer while it waits; a new one takes the trigger over; one conversation, completed."""
    dag_id = "nairi_e2e_deferred"
    run_id, _ = start_waiting(ctx, api, dag_id, {"delay": 30}, state="deferred")
    first = trigger_logs(ctx, dag_id, run_id, "starting")
    log("SIGKILL triggerer")
    ctx.airflow.processes.kill(ctx.airflow.components.pop("triggerer"))
    killed = time.time()
    ctx.airflow.start("triggerer")
    expect_success(ctx, api, dag_id, run_id)
    taken_over = [
        path for path in trigger_logs(ctx, dag_id, run_id, "Trigger fired event") if path not in first
    ]
    if not taken_over:
        raise E2EError("no trigger log of the restarted triggerer says 'Trigger fired event'")
    conversation = one_conversation(ctx, run_id)
    deferred, trigger_log = deferral(ctx, dag_id, run_id)
    warm = measured(
        lambda: first_poll(
            ctx,
            conversation["id"],
            since=deferred,
            since_what="the deferral",
            trigger_log=trigger_log,
            until=killed,
            until_what="the kill",
        )
    )
    ctx.harness.notes.append(f"first poll ({ctx.executor}, a triggerer already running): {warm}")
    restarted = measured(
        lambda: first_poll(
            ctx, conversation["id"], since=killed, since_what="the kill", trigger_log=taken_over[0]
        )
    )
    ctx.harness.notes.append(
        f"first poll ({ctx.executor}, after the triggerer's SIGKILL and restart): {restarted}"
    )


# -- first polls ------------------------------------------------------------------------------------------


def measured(figures: Callable[[], str]) -> str:
    """The figures, or why they could not be measured (a note, never a failure of the scenario)."""
    try:
        return figures()
    except (E2EError, OSError, ValueError, KeyError, IndexError) as exc:
        return f"not measured ({exc})"


def supervisor_stalls(ctx: Context, since: float, until: float) -> str:
    """The triggerer's "Heartbeat recovered after N seconds" lines logged between ``since`` and ``until``:
    its supervisor's loop was blocked that long (on Airflow 3.3, building its in-process API)."""
    log_file = ctx.airflow.components["triggerer"].log_file
    stalls = []
    for line in log_file.read_text(errors="replace").splitlines():
        found = re.match(r"(\S+Z) .*Heartbeat recovered after ([\d.]+) seconds", line)
        if found and since <= datetime.fromisoformat(found.group(1)).timestamp() <= until:
            stalls.append(found.group(2))
    return f"; the triggerer's supervisor stalled {', '.join(stalls)} s" if stalls else ""


def log_time(line: str) -> float:
    """Epoch seconds of one JSON line of a task or trigger log."""
    return datetime.fromisoformat(json.loads(line)["timestamp"]).timestamp()


def first_log_time(path: Path, text: str = "") -> float:
    """When the first line of ``path`` containing ``text`` was logged."""
    for line in path.read_text(errors="replace").splitlines():
        if text in line and line.startswith("{"):
            return log_time(line)
    raise E2EError(f"no line with {text!r} in {path}")


def polls_of(ctx: Context, conversation_id: str) -> list[float]:
    """When each ``GET /conversations/{id}`` reached the emulator (its admin request log), oldest first."""
    path = f"/conversations/{conversation_id}"
    return sorted(r["at"] for r in ctx.admin.requests_log() if r["method"] == "GET" and r["path"] == path)


def poll_intervals(polls: list[float]) -> str:
    gaps = [later - earlier for earlier, later in itertools.pairwise(polls)]
    return f"later polls every {statistics.median(gaps):.2f} s (median)" if gaps else "no later poll"


def deferral(ctx: Context, dag_id: str, run_id: str) -> tuple[float, Path]:
    """When ``ask``'s try 1 deferred (its log's "Pausing task as DEFERRED"), and its first trigger log."""
    folder = ctx.task_log_folder(dag_id, run_id, "ask")
    deferred = first_log_time(folder / "attempt=1.log", "Pausing task as DEFERRED")
    trigger_logs = sorted(folder.glob("attempt=1.log.trigger.*.log"), key=lambda path: path.stat().st_mtime)
    if not trigger_logs:
        raise E2EError(f"no trigger log in {folder}")
    return deferred, trigger_logs[0]


def first_poll(
    ctx: Context,
    conversation_id: str,
    *,
    since: float,
    since_what: str,
    trigger_log: Path,
    until: float | None = None,
    until_what: str = "the trigger's event",
) -> str:
    """Seconds from ``since`` (a deferral, a triggerer's kill) to the trigger's first line in ``trigger_log``
    and to its first poll at the emulator; the median interval of its polls before ``until`` (by default:
    until it fired, so not the resumed task's reads); the triggerer's supervisor stalls meanwhile."""
    started = first_log_time(trigger_log)
    if until is None:
        until = first_log_time(trigger_log, "Trigger fired event") + 0.5
    polls = [at for at in polls_of(ctx, conversation_id) if since <= at < until]
    if not polls:
        raise E2EError(
            f"no poll of {conversation_id} between {since_what} and {until_what} "
            "in the emulator's request log"
        )
    return (
        f"{polls[0] - since:.1f} s from {since_what} to the first request "
        f"(the trigger's first log line after {started - since:.1f} s); {poll_intervals(polls)}"
        + supervisor_stalls(ctx, since - 30, polls[0] + 1)
    )


def kill_worker(ctx: Context, api: AirflowApi, label: str) -> None:
    """``deferrable=False``: SIGKILL the process running the task mid-wait (the task's process under the
    LocalExecutor, the whole Celery worker under Celery, then a new worker); the retry reattaches to the same
    conversation."""
    dag_id = "nairi_e2e_on_worker"
    run_id, ti = start_waiting(ctx, api, dag_id, {"delay": 15}, state="running")
    if label == "celery":
        log("SIGKILL celery worker")
        ctx.airflow.processes.kill(ctx.airflow.components.pop("celery-worker"))
        ctx.airflow.start("celery worker")
    else:
        pid = ti.get("pid") or api.task_instance(dag_id, run_id, "ask").get("pid")
        if not pid or int(pid) not in ctx.airflow.components["scheduler"].session_pids():
            raise E2EError(f"the running task instance's pid {pid} is not a process of the scheduler's")
        log(f"SIGKILL task process {pid}")
        os.kill(int(pid), signal.SIGKILL)
    expect_success(ctx, api, dag_id, run_id)
    ti = api.task_instance(dag_id, run_id, "ask")
    if ti["try_number"] != 2:
        raise E2EError(f"ask ended at try {ti['try_number']}, expected try 2 (a retry after the kill)")
    conversation = one_conversation(ctx, run_id)
    reply = api.xcom(dag_id, run_id, "ask", "return_value")
    if reply.get("conversation_id") != conversation["id"]:
        raise E2EError(
            f"try 2 returned conversation {reply.get('conversation_id')}, not {conversation['id']}"
        )


def clear_deferred(ctx: Context, api: AirflowApi) -> None:
    """Clear a deferred task: try 2 ends with a reply; no conversation of the run is left working."""
    dag_id = "nairi_e2e_deferred"
    # Try 2 must wait longer than the scheduler takes to see try 2's deferral (a few seconds under load):
    # Airflow 3.3.2 fails a resumed task already queued again when that event comes late (docs/e2e.md).
    run_id, _ = start_waiting(ctx, api, dag_id, {"delay": 20}, state="deferred")
    api.call(
        "POST",
        f"/dags/{dag_id}/clearTaskInstances",
        json={"dry_run": False, "dag_run_id": run_id, "task_ids": ["ask"], "only_failed": False},
    )
    wait_until("ask cleared (try 2)", lambda: api.task_instance(dag_id, run_id, "ask")["try_number"] >= 2, 30)
    expect_success(ctx, api, dag_id, run_id)
    ti = api.task_instance(dag_id, run_id, "ask")
    if ti["try_number"] != 2:
        raise E2EError(f"ask succeeded at try {ti['try_number']}, expected 2")
    reply = api.xcom(dag_id, run_id, "ask", "return_value")
    if not (reply or {}).get("reply"):
        raise E2EError(f"try 2 returned no reply: {reply!r}")
    working = [c["id"] for c in ctx.conversations(run_id) if c["status"] in ACTIVE]
    if working:
        raise E2EError(f"conversations still working for nobody after the run: {working}")


def mark_failed(ctx: Context, api: AirflowApi) -> None:
    """Mark a deferred task failed: its conversation is cancelled within seconds (emulator state and
    request log)."""
    dag_id = "nairi_e2e_deferred"
    run_id, _ = start_waiting(ctx, api, dag_id, {"delay": 120}, state="deferred")
    conversation_id = ctx.conversations(run_id)[0]["id"]
    seconds = mark_and_wait_cancel(ctx, api, dag_id, run_id, state="failed", conversation_id=conversation_id)
    log(f"conversation cancelled {seconds:.1f} s after mark failed")
    one_conversation(ctx, run_id, status="cancelled")


def mark_success(ctx: Context, api: AirflowApi) -> None:
    """Mark the example's deferred ``ask`` success: its turn is cancelled, and the rest of the example copes
    with a task that has no reply (the follow-up is sent, the report runs): the run succeeds."""
    dag_id = "nairi_conversation"
    title = "Example run {run_id}"
    run_id, _ = start_waiting(
        ctx, api, dag_id, {"question": "Slow one. [[delay:120]]"}, state="deferred", title=title
    )
    conversation_id = ctx.conversations(title.format(run_id=run_id))[0]["id"]
    seconds = mark_and_wait_cancel(ctx, api, dag_id, run_id, state="success", conversation_id=conversation_id)
    log(f"turn cancelled {seconds:.1f} s after mark success")
    expect_success(ctx, api, dag_id, run_id)


def mark_and_wait_cancel(
    ctx: Context, api: AirflowApi, dag_id: str, run_id: str, *, state: str, conversation_id: str
) -> float:
    """Mark ``ask`` ``state`` through the API; seconds until the emulator's request log has the cancel of
    ``conversation_id`` (at most 20)."""
    marked = time.monotonic()
    api.call("PATCH", api.ti_path(dag_id, run_id, "ask"), json={"new_state": state})
    cancel = f"/conversations/{conversation_id}/cancel"
    wait_until(
        f"the cancel of {conversation_id} in the emulator's request log",
        lambda: any(r["path"] == cancel and r["status"] == 200 for r in ctx.admin.requests_log()),
        20,
    )
    return time.monotonic() - marked
