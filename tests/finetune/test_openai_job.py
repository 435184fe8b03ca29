"""`tf-prompt finetune --provider openai`: upload, create, follow, resume, refuse; through the real
openai SDK over HTTP to the loopback server's fine-tuning endpoints (testing/fine_tuning.py).

A kill is a real SIGKILL of a `tf-prompt` process, sent while the server holds back the answer to
an upload or a job creation it has already done: the rerun must find what was made (the server's
counts say no second upload or job was made)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tf_prompt.cli import main
from tf_prompt.finetune import openai_job
from tf_prompt.finetune.openai_job import STATE_FILE
from tf_prompt.testing import Fault, LoopbackServer, oracle_responder

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(openai_job, "RETRY_INITIAL", 0.01)


@pytest.fixture
def srv():
    with LoopbackServer() as server:
        yield server


ANSWER = '{"entities": [{"text": "Amina", "type": "PER"}]}'


def _example(i: int) -> str:
    return json.dumps({"messages": [{"role": "system", "content": "Find the named entities."},
                                    {"role": "user", "content": f"Sentence: Amina {i} went to Kano."},
                                    {"role": "assistant", "content": ANSWER}]})


def _folder(tmp_path: Path, n_train: int = 12, n_validation: int = 2, name: str = "ft",
            summary: dict[str, Any] | None = None) -> Path:
    """A data folder as finetune-data writes it (chat lines, summary.json)."""
    folder = tmp_path / name
    folder.mkdir()
    (folder / "train.jsonl").write_text("".join(_example(i) + "\n" for i in range(n_train)), encoding="utf-8")
    (folder / "validation.jsonl").write_text("".join(_example(100 + i) + "\n" for i in range(n_validation)),
                                             encoding="utf-8")
    (folder / "summary.json").write_text(json.dumps(summary or {"format": "openai", "train_model": "gpt-4o-mini",
                                                                "epochs": 2, "method": "direct",
                                                                "style": "json"}), encoding="utf-8")
    return folder


def _args(server: LoopbackServer, folder: Path, *extra: str) -> list[str]:
    return ["finetune", "--provider", "openai", "--data", str(folder), "--base-url", server.base_url,
            "--poll-interval", "0.01", *extra]


def _ft(capsys: pytest.CaptureFixture[str], server: LoopbackServer, folder: Path, *extra: str) -> tuple[int, str, str]:
    code = main(_args(server, folder, *extra))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _state(folder: Path) -> dict[str, Any]:
    return json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("tf-prompt: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def _spawn(server: LoopbackServer, folder: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tf_prompt.cli", *_args(server, folder, *extra)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})


def _wait_for(condition: Any, proc: subprocess.Popen[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the process ended early ({proc.returncode}): {proc.communicate()}")
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# -- end to end ----------------------------------------------------------------------------------------

def test_finetune_data_then_finetune_end_to_end(srv: LoopbackServer, tmp_path: Path, capsys) -> None:
    """finetune-data on the shipped sample, then finetune: both files uploaded as written, one job
    with the snapshot and the epochs of summary.json, progress shown, the model id and the run
    command printed; a rerun sends nothing but prints the same model."""
    from tf_prompt.data.conll import read_conll
    from tf_prompt.data.datasets import sample_path

    srv.responder = oracle_responder(read_conll(sample_path()), ["PER", "ORG", "LOC", "DATE"])
    folder = tmp_path / "data"
    assert main(["finetune-data", "--model", "gpt-4o-mini", "--base-url", srv.base_url, "--method", "transfusion",
                 "--out", str(folder), "--validation-share", "0.2", "--epochs", "2"]) == 0
    capsys.readouterr()
    srv.fine_tuning.total_steps = 3

    code, out, err = _ft(capsys, srv, folder, "--suffix", "ner")
    assert code == 0, err
    ft = srv.fine_tuning
    assert srv.uploads == 2 and ft.jobs_created == 1
    uploaded = {f["filename"].rsplit("-", 1)[-1]: f for f in srv.files.values()}
    for name in ("train.jsonl", "validation.jsonl"):
        assert uploaded[name]["data"] == (folder / name).read_bytes()
        assert uploaded[name]["purpose"] == "fine-tune"
    body = ft.create_bodies[0]
    assert body["model"] == "gpt-4o-mini-2024-07-18"      # the alias in summary.json, as its snapshot
    assert body["method"]["supervised"]["hyperparameters"]["n_epochs"] == 2
    assert body["suffix"] == "ner" and body["validation_file"] != body["training_file"]
    job = next(iter(ft.jobs.values()))
    model = job["fine_tuned_model"]
    assert model.startswith("ft:gpt-4o-mini-2024-07-18:loopback:ner:")
    assert f"fine-tuned model: {model}" in out
    assert (f"run it: tf-prompt run --model {model} --method transfusion --style json --data TEST_DATA "
            f"--base-url {srv.base_url}") in out
    for said in ("step 1/3", "step 3/3, train loss 0.3333", "queued", "running", "succeeded", "uploaded as"):
        assert said in err
    state = _state(folder)
    assert state["status"] == "succeeded" and state["fine_tuned_model"] == model and state["job_id"] == job["id"]

    polls = ft.job_polls
    code, out2, err2 = _ft(capsys, srv, folder, "--suffix", "ner")
    assert code == 0 and f"fine-tuned model: {model}" in out2 and "already succeeded" in err2
    assert (srv.uploads, ft.jobs_created, ft.job_polls) == (2, 1, polls)


def test_validation_share_zero_uploads_no_validation_file(srv: LoopbackServer, tmp_path: Path, capsys) -> None:
    folder = _folder(tmp_path, n_validation=0)
    code, _, err = _ft(capsys, srv, folder)
    assert code == 0, err
    assert srv.uploads == 1 and srv.fine_tuning.create_bodies[0].get("validation_file") is None


# -- resuming: never a second upload or job --------------------------------------------------------------

def test_kill_after_upload_rerun_finds_the_file(srv: LoopbackServer, tmp_path: Path, capsys) -> None:
    folder = _folder(tmp_path)
    srv.fine_tuning.hold["upload"] = 60
    proc = _spawn(srv, folder)
    try:
        _wait_for(lambda: srv.uploads == 1, proc)   # stored at the server; the answer is held back
    finally:
        proc.kill()
        proc.communicate()
    srv.fine_tuning.hold.clear()
    assert _state(folder)["files"]["train"]["id"] is None   # killed before the state knew it

    code, _, err = _ft(capsys, srv, folder)
    assert code == 0, err
    assert srv.uploads == 2                      # train was found by its name; only validation was sent
    assert srv.fine_tuning.list_calls["files"] >= 1 and "already uploaded as file-loopback-0" in err
    assert srv.fine_tuning.jobs_created == 1
    assert srv.fine_tuning.create_bodies[0]["training_file"] == "file-loopback-0"


def test_kill_after_job_creation_rerun_adopts_the_job(srv: LoopbackServer, tmp_path: Path, capsys) -> None:
    folder = _folder(tmp_path)
    srv.fine_tuning.hold["create"] = 60
    proc = _spawn(srv, folder)
    try:
        _wait_for(lambda: srv.fine_tuning.jobs_created == 1, proc)
    finally:
        proc.kill()
        proc.communicate()
    srv.fine_tuning.hold.clear()
    assert _state(folder)["job_id"] is None

    code, out, err = _ft(capsys, srv, folder)
    assert code == 0, err
    assert (srv.uploads, srv.fine_tuning.jobs_created) == (2, 1)
    assert "found, created for this data by an earlier run" in err
    assert _state(folder)["job_id"] == "ftjob-loopback0"
    assert "fine-tuned model: ft:" in out


def test_a_second_run_on_the_folder_is_refused_while_one_runs(srv: LoopbackServer, tmp_path: Path, capsys) -> None:
    """Two runs on one folder (the command started twice) would both list, both find nothing
    and both create a paid job; the second is refused in one line and sends nothing."""
    folder = _folder(tmp_path)
    srv.fine_tuning.hold["upload"] = 60
    proc = _spawn(srv, folder)
    try:
        _wait_for(lambda: srv.uploads == 1, proc)   # the first run is waiting for its upload's answer
        code, _, err = _ft(capsys, srv, folder)
    finally:
        proc.kill()
        proc.communicate()
    assert code == 2
    line = _one_error_line(err)
    assert str(folder) in line and "another tf-prompt finetune" in line
    assert srv.uploads == 1 and srv.fine_tuning.jobs_created == 0


def test_adoption_skips_other_jobs_across_pages(srv: LoopbackServer, tmp_path: Path, capsys,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed after its job was created, the run finds it behind newer jobs on later pages of the
    job list, and not a newer job on the same training file made for other settings."""
    import openai

    folder = _folder(tmp_path)
    srv.fine_tuning.hold["create"] = 60
    srv.fine_tuning.polls_per_state = None
    proc = _spawn(srv, folder)
    try:
        _wait_for(lambda: srv.fine_tuning.jobs_created == 1, proc)
    finally:
        proc.kill()
        proc.communicate()
    srv.fine_tuning.hold.clear()
    ours = "ftjob-loopback0"
    train_id = srv.fine_tuning.jobs[ours]["training_file"]
    with openai.OpenAI(base_url=srv.base_url, api_key="x", max_retries=0) as sdk:
        other = sdk.files.create(file=("other.jsonl", b"{}\n"), purpose="fine-tune")
        for metadata, file_id in ((None, other.id), ({"tf_prompt_key": "another"}, train_id), (None, other.id)):
            sdk.fine_tuning.jobs.create(model="gpt-4o-mini-2024-07-18", training_file=file_id, metadata=metadata)
    monkeypatch.setattr(openai_job, "PAGE", 1)
    srv.fine_tuning.polls_per_state = 1
    calls = srv.fine_tuning.list_calls["jobs"]
    code, _, err = _ft(capsys, srv, folder)
    assert code == 0, err
    assert _state(folder)["job_id"] == ours and srv.fine_tuning.jobs_created == 4
    assert srv.fine_tuning.list_calls["jobs"] - calls == 4    # one page per job, ours the last


def test_polling_outage_is_waited_out(srv: LoopbackServer, tmp_path: Path, capsys) -> None:
    """The job runs for hours: failed status checks (more than one request's retries) are not the
    end of the run."""
    folder = _folder(tmp_path)
    polls: list[int] = []

    def fault(method: str, route: str) -> Fault | None:
        if route == "job":
            polls.append(1)
            return Fault(503) if len(polls) <= 2 * openai_job.ATTEMPTS else None
        return None

    srv.fine_tuning.fault = fault
    code, out, err = _ft(capsys, srv, folder)
    assert code == 0 and "fine-tuned model: ft:" in out, err
    assert "cannot check it now" in err and srv.fine_tuning.jobs_created == 1


def test_lost_create_answer_is_not_retried_blind(srv: LoopbackServer, tmp_path: Path, capsys) -> None:
    """A 500 on the first creation: the job list is read again before the second try, and one job
    is made."""
    folder = _folder(tmp_path)
    seen: list[str] = []

    def fault(method: str, route: str) -> Fault | None:
        seen.append(route)
        return Fault(500) if route == "create" and seen.count("create") == 1 else None

    srv.fine_tuning.fault = fault
    code, _, err = _ft(capsys, srv, folder)
    assert code == 0, err
    assert srv.fine_tuning.jobs_created == 1 and seen.count("create") == 2
    first = seen.index("create")
    assert "jobs" in seen[first:seen.index("create", first + 1)]   # looked before trying again


def test_max_wait_then_resume(srv: LoopbackServer, tmp_path: Path, capsys) -> None:
    folder = _folder(tmp_path)
    srv.fine_tuning.polls_per_state = None   # the job stays where it is
    code, out, err = _ft(capsys, srv, folder, "--max-wait", "0.1")
    assert code == 3 and out == ""
    assert "job ftjob-loopback0 is still validating_files" in err and "rerun the same command" in err
    assert _state(folder)["status"] == "validating_files"
    assert srv.fine_tuning.jobs["ftjob-loopback0"]["status"] == "validating_files"   # not cancelled

    srv.fine_tuning.polls_per_state = 1
    code, out, err = _ft(capsys, srv, folder)
    assert code == 0 and "following the job started earlier" in err and "fine-tuned model: ft:" in out
    assert (srv.uploads, srv.fine_tuning.jobs_created) == (2, 1)


def test_max_wait_holds_when_the_endpoint_hangs_or_the_poll_interval_is_long(srv: LoopbackServer, tmp_path: Path,
                                                                               capsys,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """--max-wait 1 is one second, not the SDK's 300 s request timeout (times its retries) of an
    endpoint that stopped answering, nor a --poll-interval of ten minutes."""
    monkeypatch.setattr(openai_job, "MIN_POLL_WAIT", 0.5)
    folder = _folder(tmp_path)
    srv.fine_tuning.polls_per_state = None
    started = time.monotonic()
    code, _, err = _ft(capsys, srv, folder, "--max-wait", "1", "--poll-interval", "600")
    assert code == 3 and "is still validating_files" in err and time.monotonic() - started < 8
    srv.fine_tuning.hold["job"] = 30   # the status request is never answered in time
    started = time.monotonic()
    code, _, err = _ft(capsys, srv, folder, "--max-wait", "1")
    assert code == 3 and "rerun the same command" in err and time.monotonic() - started < 8
    srv.fine_tuning.hold.clear()


def test_ctrl_c_leaves_the_job_running(srv: LoopbackServer, tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    srv.fine_tuning.polls_per_state = None
    proc = _spawn(srv, folder)
    try:
        _wait_for(lambda: srv.fine_tuning.job_polls >= 2, proc)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert "job ftjob-loopback0 keeps running at the provider: rerun the same command" in err
    assert "Traceback" not in err
    assert srv.fine_tuning.jobs["ftjob-loopback0"]["status"] == "validating_files"


# -- refusals ------------------------------------------------------------------------------------------

def test_changed_data_or_settings_refused_until_restart(srv: LoopbackServer, tmp_path: Path, capsys) -> None:
    folder = _folder(tmp_path)
    srv.fine_tuning.polls_per_state = None
    assert _ft(capsys, srv, folder, "--max-wait", "0")[0] == 3

    with (folder / "train.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(_example(999) + "\n")
    code, _, err = _ft(capsys, srv, folder)
    line = _one_error_line(err)
    assert code == 2 and "ftjob-loopback0" in line and "train.jsonl changed" in line and "--restart" in line
    code, _, err = _ft(capsys, srv, folder, "--epochs", "5")
    assert code == 2 and "epochs 2 -> 5" in _one_error_line(err)
    assert srv.fine_tuning.jobs_created == 1

    srv.fine_tuning.polls_per_state = 1
    code, _, err = _ft(capsys, srv, folder, "--restart")
    assert code == 0, err
    assert srv.fine_tuning.jobs_created == 2 and "is left running" in err
    assert srv.fine_tuning.jobs["ftjob-loopback0"]["status"] == "validating_files"   # not cancelled
    state = _state(folder)
    assert state["job_id"] == "ftjob-loopback1" and state["previous"][0]["job_id"] == "ftjob-loopback0"
    assert srv.uploads == 3    # the validation file was the same and is reused


def test_failed_job_one_line_and_no_second_job(srv: LoopbackServer, tmp_path: Path, capsys) -> None:
    folder = _folder(tmp_path)
    srv.fine_tuning.fail_with = {"code": "invalid_training_file", "param": "training_file",
                                 "message": "The file has 3 examples with an unknown role."}
    code, out, err = _ft(capsys, srv, folder)
    line = _one_error_line(err)
    assert code == 1 and out == ""
    assert "ftjob-loopback0 failed: The file has 3 examples with an unknown role." in line
    assert "[invalid_training_file, training_file]" in line
    code, _, err = _ft(capsys, srv, folder)
    assert code == 1 and "ftjob-loopback0 failed" in _one_error_line(err)
    assert srv.fine_tuning.jobs_created == 1


def test_job_cancelled_at_the_provider(srv: LoopbackServer, tmp_path: Path, capsys) -> None:
    folder = _folder(tmp_path)
    ft = srv.fine_tuning
    ft.polls_per_state = None

    def cancel_on_second_poll(method: str, route: str) -> Fault | None:
        if route == "job" and ft.job_polls == 1:
            ft._cancel(ft.jobs["ftjob-loopback0"])   # someone cancels it on the dashboard
        return None

    ft.fault = cancel_on_second_poll
    code, out, err = _ft(capsys, srv, folder)
    assert code == 1 and out == ""
    assert "fine-tuning job ftjob-loopback0 cancelled: no reason given" in _one_error_line(err)
    assert _state(folder)["status"] == "cancelled"


def test_bad_key_one_line(srv: LoopbackServer, tmp_path: Path, capsys) -> None:
    folder = _folder(tmp_path)
    srv.fine_tuning.fault = lambda method, route: Fault(401, {"error": {
        "message": "Incorrect API key provided: sk-wrong.", "type": "invalid_request_error",
        "code": "invalid_api_key"}})
    code, _, err = _ft(capsys, srv, folder)
    line = _one_error_line(err)
    assert code == 1 and "HTTP 401" in line and "check OPENAI_API_KEY" in line
    assert srv.uploads == 0 and srv.fine_tuning.jobs_created == 0


def test_quota_one_line_not_retried(srv: LoopbackServer, tmp_path: Path, capsys) -> None:
    folder = _folder(tmp_path)
    creates: list[int] = []

    def fault(method: str, route: str) -> Fault | None:
        if route != "create":
            return None
        creates.append(1)
        return Fault(429, {"error": {"message": "You exceeded your current quota.", "type": "insufficient_quota",
                                     "code": "insufficient_quota"}})

    srv.fine_tuning.fault = fault
    code, _, err = _ft(capsys, srv, folder)
    line = _one_error_line(err)
    assert code == 1 and "insufficient quota (HTTP 429)" in line and "You exceeded your current quota." in line
    assert len(creates) == 1 and srv.fine_tuning.jobs_created == 0
    # a refused creation made no job: other settings are not refused as if one were pending
    srv.fine_tuning.fault = None
    code, out, err = _ft(capsys, srv, folder, "--epochs", "4")
    assert code == 0 and "fine-tuned model: ft:" in out, err
    assert srv.fine_tuning.create_bodies[0]["method"]["supervised"]["hyperparameters"]["n_epochs"] == 4
    assert srv.uploads == 2    # the files uploaded before the refusal are reused


def test_invalid_file_rejected_by_provider(srv: LoopbackServer, tmp_path: Path, capsys) -> None:
    folder = _folder(tmp_path)
    srv.fine_tuning.fault = lambda method, route: Fault(400, {"error": {
        "message": "File file-loopback-0 has invalid format on line 7.", "type": "invalid_request_error",
        "param": "training_file", "code": "invalid_file_format"}}) if route == "create" else None
    code, _, err = _ft(capsys, srv, folder)
    line = _one_error_line(err)
    assert code == 1 and "HTTP 400" in line and "invalid format on line 7" in line


@pytest.mark.parametrize(("line", "said"), [
    ('{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}', "not JSON"),
    ('{"prompt": [], "completion": []}', "a prompt/completion record (finetune-data --format hf-prompt)"),
    ('{"messages": [{"role": "robot", "content": "x"}]}', "messages[0]: role 'robot' is not one of"),
    ('{"messages": [{"role": "user", "content": "x"}]}', "no assistant message"),
    ("", "an empty line"),
    ('{"messages": [{"role": "user", "content": "x\\ud800"}, {"role": "assistant", "content": "y"}]}',
     "messages[0] (user): content holds a lone surrogate \\ud800"),
])
def test_bad_line_named_before_anything_is_sent(srv: LoopbackServer, tmp_path: Path, capsys, line: str,
                                                said: str) -> None:
    folder = _folder(tmp_path)
    lines = (folder / "train.jsonl").read_text(encoding="utf-8").splitlines()
    lines[2] = line
    (folder / "train.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, _, err = _ft(capsys, srv, folder)
    assert code == 2
    assert f"{folder / 'train.jsonl'}:3: {said}" in _one_error_line(err)
    assert srv.fine_tuning.authorizations == []    # nothing was sent
    assert not (folder / STATE_FILE).exists()


def test_too_few_examples_and_missing_folder(srv: LoopbackServer, tmp_path: Path, capsys) -> None:
    code, _, err = _ft(capsys, srv, _folder(tmp_path, n_train=4))
    assert code == 2 and "4 examples; OpenAI fine-tuning needs at least 10" in _one_error_line(err)
    code, _, err = _ft(capsys, srv, tmp_path / "nowhere")
    assert code == 2 and "not a folder" in _one_error_line(err)
    # the data is checked before the key is read (no OPENAI_API_KEY and no --base-url here)
    code = main(["finetune", "--provider", "openai", "--data", str(tmp_path / "nowhere")])
    assert code == 2 and "not a folder" in _one_error_line(capsys.readouterr().err)
    assert srv.fine_tuning.authorizations == []


def test_key_goes_to_its_endpoint_only(srv: LoopbackServer, tmp_path: Path, capsys,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    key = "sk-test-finetune-key-1234567890"
    monkeypatch.setenv("MY_FT_KEY", key)
    folder = _folder(tmp_path)
    code, out, err = _ft(capsys, srv, folder, "--api-key-env", "MY_FT_KEY")
    assert code == 0, err
    assert srv.fine_tuning.authorizations and set(srv.fine_tuning.authorizations) == {key}
    for text in (out, err, *(p.read_text(encoding="utf-8") for p in folder.iterdir())):
        assert key not in text
    assert "--api-key-env MY_FT_KEY" in out

    monkeypatch.delenv("MY_FT_KEY")
    code, _, err = _ft(capsys, srv, _folder(tmp_path, name="other"), "--api-key-env", "MY_FT_KEY")
    assert code == 1 and "MY_FT_KEY is not set" in _one_error_line(err)


@pytest.mark.parametrize(("flags", "said"), [
    (["--poll-interval", "nan"], "--poll-interval nan"),    # polled with no pause at all
    (["--poll-interval", "inf"], "--poll-interval inf"),    # never polled again
    (["--max-wait", "nan"], "--max-wait nan"),
    (["--max-wait", "-5"], "--max-wait -5"),
])
def test_bad_waiting_numbers_are_one_line(srv: LoopbackServer, tmp_path: Path, capsys, flags: list[str],
                                         said: str) -> None:
    folder = _folder(tmp_path)
    code = main(["finetune", "--provider", "openai", "--data", str(folder), "--base-url", srv.base_url, *flags])
    assert code == 2 and said in _one_error_line(capsys.readouterr().err)
    assert srv.fine_tuning.authorizations == [] and not (folder / STATE_FILE).exists()


@pytest.mark.parametrize(("model", "summary_model"), [(None, "gguf:qwen2.5-coder-1.5b"), ("hf:/models/base", None),
                                                      ("anthropic:claude-3-5-haiku", None)])
def test_a_base_of_another_backend_is_refused_before_anything_is_sent(srv: LoopbackServer, tmp_path: Path, capsys,
                                                                      model: str | None,
                                                                      summary_model: str | None) -> None:
    """finetune-data made with a local teacher records it as train_model; OpenAI cannot tune it, and
    learning that from the provider would come after the uploads."""
    folder = _folder(tmp_path, summary={"format": "openai", "train_model": summary_model or "gpt-4o-mini"})
    code, _, err = _ft(capsys, srv, folder, *(["--model", model] if model else []))
    named = model or summary_model
    assert code == 2
    line = _one_error_line(err)
    assert str(named) in line and "--provider hf" in line
    assert srv.fine_tuning.authorizations == [] and srv.uploads == 0


def test_a_state_file_that_cannot_be_written_is_one_line(srv: LoopbackServer, tmp_path: Path, capsys,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk (or a read-only data folder) when the state is saved after the job was created:
    one line, and the rerun adopts the job instead of making a second one."""
    import errno

    from tf_prompt.util import atomic

    real_write, folder = atomic.write_text, _folder(tmp_path)

    def full_once_the_job_exists(path: Any, text: str, *args: Any, **kw: Any) -> Any:
        if srv.fine_tuning.jobs_created and '"job_id": "ftjob' in text:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(path, text, *args, **kw)

    monkeypatch.setattr(atomic, "write_text", full_once_the_job_exists)
    code, _, err = _ft(capsys, srv, folder)
    line = _one_error_line(err)
    assert code == 2 and str(folder / STATE_FILE) in line and "No space left" in line
    monkeypatch.undo()
    code, out, err = _ft(capsys, srv, folder)
    assert "fine-tuned model: ft:" in out
    assert code == 0, err
    assert srv.fine_tuning.jobs_created == 1 and "found, created for this data by an earlier run" in err
