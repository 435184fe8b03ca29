"""The loopback server's fine-tuning endpoints, read by the real SDK: pagination as its pages
follow it, the job's course, events, cancel and the files list; what the finetune tests rely on."""

from __future__ import annotations

import openai
import pytest

from tf_prompt.testing import LoopbackServer


@pytest.fixture
def sdk():
    with LoopbackServer() as srv, openai.OpenAI(base_url=srv.base_url, api_key="x", max_retries=0) as client:
        yield srv, client


def test_lists_page_through_newest_first(sdk) -> None:
    srv, client = sdk
    files = [client.files.create(file=(f"f{i}.jsonl", b"{}\n"), purpose="fine-tune").id for i in range(3)]
    client.files.create(file=("b.jsonl", b"{}\n"), purpose="batch")
    jobs = [client.fine_tuning.jobs.create(model="m", training_file=f).id for f in files]
    assert [j.id for j in client.fine_tuning.jobs.list(limit=2)] == jobs[::-1]
    assert srv.fine_tuning.list_calls["jobs"] == 2
    listed = client.files.list(purpose="fine-tune", order="desc", limit=1)
    assert [f.id for f in listed] == files[::-1]
    assert [f.id for f in client.files.list(order="asc")][:3] == files


def test_job_course_events_and_cancel(sdk) -> None:
    srv, client = sdk
    srv.fine_tuning.total_steps = 2
    train = client.files.create(file=("t.jsonl", b'{"messages": []}\n' * 8), purpose="fine-tune").id
    job = client.fine_tuning.jobs.create(model="m", training_file=train, suffix="x",
                                         method={"type": "supervised",
                                                 "supervised": {"hyperparameters": {"n_epochs": 2}}})
    seen = [client.fine_tuning.jobs.retrieve(job.id).status for _ in range(5)]
    assert seen == ["queued", "running", "running", "succeeded", "succeeded"]   # one step a poll while running
    done = client.fine_tuning.jobs.retrieve(job.id)
    assert done.fine_tuned_model == f"ft:m:loopback:x:{job.id[-8:]}" and done.trained_tokens
    assert done.hyperparameters.n_epochs == 2
    events = list(client.fine_tuning.jobs.list_events(job.id, limit=3))
    metrics = [e.data for e in events if e.type == "metrics"]
    assert metrics == [{"step": 2, "total_steps": 2, "train_loss": 0.5},
                       {"step": 1, "total_steps": 2, "train_loss": 1.0}]
    other = client.fine_tuning.jobs.create(model="m", training_file=train)
    assert client.fine_tuning.jobs.cancel(other.id).status == "cancelled"
    assert client.fine_tuning.jobs.retrieve(other.id).status == "cancelled"
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.create(model="m", training_file="file-nowhere")
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.retrieve("ftjob-nowhere")
