import pytest
from kombu import Queue

from workers.celery import QUEUES, app
from workers.tasks import ping


def test_queues_have_their_own_exchange_and_routing_key():
    queues: list[Queue] = app.conf.task_queues
    assert {q.name for q in queues} == set(QUEUES) == {"default", "gpu", "control", "batch"}
    for queue in queues:
        assert queue.exchange.name == queue.name
        assert queue.routing_key == queue.name


def test_broker_is_redis_when_configured_else_the_filesystem(settings):
    if settings.REDIS_URL:
        assert app.conf.broker_url == settings.CELERY_BROKER_URL != settings.REDIS_CACHE_URL
        assert app.conf.broker_transport_options["visibility_timeout"] > 0
    else:
        assert app.conf.broker_url == "filesystem://"
        assert app.conf.broker_transport_options["data_folder_in"].startswith(str(settings.VAR_DIR))


@pytest.mark.worker
def test_ping_runs_in_a_real_worker_through_the_real_broker(default_worker):
    result = ping.apply_async()
    # A worker process answers, not this one: the reply names a host and was
    # carried back through the result backend.
    reply = result.get(timeout=60)
    assert reply["pong"] is True
    assert result.successful()
    assert default_worker.poll() is None


def test_training_goes_to_the_gpu_queue_and_reports_to_the_control_queue():
    router = app.amqp.router
    assert router.route({}, "finetuning.train")["queue"].name == "gpu"
    assert router.route({}, "finetuning.report")["queue"].name == "control"
    assert router.route({}, "files.validate")["queue"].name == "default"


def test_batch_runs_have_a_queue_of_their_own_and_their_validation_the_default():
    router = app.amqp.router
    assert router.route({}, "batches.run")["queue"].name == "batch"
    assert router.route({}, "batches.validate")["queue"].name == "default"
    assert router.route({}, "batches.sweep")["queue"].name == "default"


def test_the_reaper_and_the_dispatcher_run_on_the_control_queue():
    router = app.amqp.router
    assert router.route({}, "finetuning.reap")["queue"].name == "control"
    assert router.route({}, "finetuning.dispatch")["queue"].name == "control"
    assert router.route({}, "finetuning.prepare")["queue"].name == "default"
