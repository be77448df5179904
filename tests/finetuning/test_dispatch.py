"""Dispatch: GPU slots are shared fairly between organizations, within their limits,
and reports from a superseded attempt never touch the job."""

from tests.finetuning.conftest import lost, make_training_file, queued_job, report
from tokenmill.catalog.models import BaseModel
from tokenmill.finetuning import scheduling
from tokenmill.finetuning.models import FineTuningJob


def finish(job: FineTuningJob) -> None:
    report(job, "outcome", {"status": "cancelled"}, seq=99)


def test_one_tenants_backlog_cannot_starve_another(
    acme,
    globex,
    settings,
    artifact_store,
    demo_model_path,
    sent,
    django_capture_on_commit_callbacks,
):
    settings.GPU_WORKER_SLOTS = 2
    settings.MAX_CONCURRENT_JOBS = 5
    acme_jobs = [queued_job(acme) for _ in range(4)]  # acme queued first...
    globex_job = queued_job(globex)  # ...globex's one job arrives last

    with django_capture_on_commit_callbacks(execute=True):
        scheduling.jobs_dispatch()
    # One slot each: globex does not wait behind acme's backlog.
    assert [spec["job_id"] for spec in sent] == [acme_jobs[0].public_id, globex_job.public_id]

    with django_capture_on_commit_callbacks(execute=True):
        assert scheduling.jobs_dispatch() == []  # no free slot
        finish(FineTuningJob.unscoped.get(pk=acme_jobs[0].pk))
        scheduling.jobs_dispatch()
    assert sent[-1]["job_id"] == acme_jobs[1].public_id


def test_an_organization_never_exceeds_its_concurrent_job_limit(
    acme, settings, artifact_store, demo_model_path, sent, django_capture_on_commit_callbacks
):
    settings.GPU_WORKER_SLOTS = 4
    acme.max_concurrent_jobs = 1
    acme.save()
    jobs = [queued_job(acme) for _ in range(3)]
    with django_capture_on_commit_callbacks(execute=True):
        scheduling.jobs_dispatch()
    assert [spec["job_id"] for spec in sent] == [jobs[0].public_id]
    assert FineTuningJob.unscoped.filter(dispatched_at__isnull=True, status="queued").count() == 2


def test_the_spec_is_self_contained(
    acme, settings, artifact_store, demo_model_path, sent, django_capture_on_commit_callbacks
):
    job = queued_job(acme)
    with django_capture_on_commit_callbacks(execute=True):
        scheduling.jobs_dispatch()
    [spec] = sent
    assert spec["job_id"] == job.public_id and spec["attempt"] == 1
    assert spec["training_file"] == job.training_file.normalized_key
    assert spec["base_model_path"] == "tiny-chat"
    assert spec["output_prefix"] == f"jobs/{job.public_id}/attempt-1"
    assert set(spec["hyperparameters"]) == {
        "n_epochs",
        "batch_size",
        "learning_rate",
        "lora_r",
        "lora_alpha",
    }
    assert spec["seed"] == job.seed and spec["context_length"] == 256


def test_reports_of_a_superseded_attempt_are_ignored(
    acme, settings, artifact_store, demo_model_path, sent, django_capture_on_commit_callbacks
):
    job = queued_job(acme)
    with django_capture_on_commit_callbacks(execute=True):
        scheduling.jobs_dispatch()
    job.refresh_from_db()
    assert report(job, "started", {"worker": "a"}, attempt=1)
    # The worker went silent: the reaper requeued the job and attempt 2 was dispatched...
    lost(job, settings)
    with django_capture_on_commit_callbacks(execute=True):
        assert scheduling.requeue_or_fail_lost_jobs()["requeued"] == 1
        scheduling.jobs_dispatch()
    # ...so the old worker's late outcome changes nothing.
    assert not report(
        job,
        "outcome",
        {"status": "succeeded", "trained_tokens": 1, "output": "x"},
        attempt=1,
        seq=9,
    )
    job.refresh_from_db()
    assert (job.status, job.attempt, job.fine_tuned_model) == ("queued", 2, None)
    assert sent[-1]["attempt"] == 2


def test_a_suspended_organizations_jobs_wait(
    acme,
    globex,
    settings,
    artifact_store,
    demo_model_path,
    sent,
    django_capture_on_commit_callbacks,
):
    from tenants import services as tenant_services

    job = queued_job(acme)
    tenant_services.organization_set_status(tenant=acme, status="suspended")
    with django_capture_on_commit_callbacks(execute=True):
        assert scheduling.jobs_dispatch() == []
    tenant_services.organization_set_status(tenant=acme, status="active")
    with django_capture_on_commit_callbacks(execute=True):
        scheduling.jobs_dispatch()
    assert [spec["job_id"] for spec in sent] == [job.public_id]


def waiting_jobs(tenant, file, n: int) -> list[FineTuningJob]:
    """`n` prepared jobs, made directly: the dispatcher is what is under test."""
    return [
        FineTuningJob.objects.create(
            tenant=tenant,
            base_model=file_model(),
            training_file=file,
            seed=1,
            status="queued",
            resolved_hyperparameters={"n_epochs": 1, "batch_size": 4, "learning_rate": 0.005},
        )
        for _ in range(n)
    ]


def file_model() -> BaseModel:
    return BaseModel.objects.get(model_id="tiny-chat")


def test_sixty_jobs_of_one_tenant_take_turns_with_another_tenants_one(
    acme, globex, settings, artifact_store, sent, django_capture_on_commit_callbacks
):
    settings.GPU_WORKER_SLOTS = 1
    acme_jobs = waiting_jobs(acme, make_training_file(acme), 60)
    [globex_job] = waiting_jobs(globex, make_training_file(globex), 1)  # posted after all 60
    order = []
    for _ in range(5):
        with django_capture_on_commit_callbacks(execute=True):
            [dispatched_pk] = scheduling.jobs_dispatch()
        order.append(dispatched_pk)
        finish(FineTuningJob.unscoped.get(pk=dispatched_pk))
    assert order == [
        acme_jobs[0].pk,
        globex_job.pk,  # second, not 61st
        acme_jobs[1].pk,
        acme_jobs[2].pk,
        acme_jobs[3].pk,
    ]
    assert [spec["job_id"] for spec in sent][:2] == [acme_jobs[0].public_id, globex_job.public_id]


def test_the_tenant_served_longest_ago_goes_first(
    acme, globex, settings, artifact_store, sent, django_capture_on_commit_callbacks
):
    settings.GPU_WORKER_SLOTS = 1
    a = waiting_jobs(acme, make_training_file(acme), 3)
    g = waiting_jobs(globex, make_training_file(globex), 3)
    order = []
    for _ in range(6):
        with django_capture_on_commit_callbacks(execute=True):
            [pk] = scheduling.jobs_dispatch()
        order.append(pk)
        finish(FineTuningJob.unscoped.get(pk=pk))
    assert order == [a[0].pk, g[0].pk, a[1].pk, g[1].pk, a[2].pk, g[2].pk]
