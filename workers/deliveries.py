"""A task that keeps killing its worker is given up on, not redelivered forever.

Tasks are acknowledged late and requeued when their worker is lost
(`task_acks_late`, `task_reject_on_worker_lost`), so a worker killed by the kernel
for its memory does not lose the task. But if the task itself is what kills the
worker (one huge upload), it comes back again and again. So each delivery is
counted at task start, keyed by task id and retry number (a retry is a new
delivery, not a redelivery), and one past TASK_MAX_DELIVERIES fails with
DeliveriesExhausted instead of running: the message is acknowledged, the failure is
recorded, and the task's `on_failure` can say so on the object it works on.

This is the app's default task class (workers/celery.py), so every task that
is requeued on worker loss gets the bound; a task with its own base class
subclasses this one.
"""

import logging

from celery import Task
from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

#: how long a delivery count is remembered; longer than any task is redelivered for
DELIVERY_MEMORY_SECONDS = 24 * 3600


class DeliveriesExhausted(Exception):
    """This delivery is one too many: every earlier one lost its worker before finishing."""

    def __init__(self, task_name: str, task_id: str, deliveries: int):
        # The arguments are the exception's args, so it pickles and reaches on_failure whole.
        super().__init__(task_name, task_id, deliveries)
        self.task_name, self.task_id, self.deliveries = task_name, task_id, deliveries

    def __str__(self) -> str:
        return (
            f"{self.task_name} {self.task_id} was delivered {self.deliveries} times; the worker "
            f"was lost during each of the {self.deliveries - 1} before, so it is given up"
        )


def delivery_count(task_id: str, *, retries: int) -> int:
    """Count one more delivery of this task id and retry number, and return the count."""
    key = f"task-deliveries:{task_id}:{retries}"
    cache.add(key, 0, DELIVERY_MEMORY_SECONDS)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, DELIVERY_MEMORY_SECONDS)
        return 1


class BoundedDeliveriesTask(Task):
    def before_start(self, task_id, args, kwargs) -> None:
        super().before_start(task_id, args, kwargs)
        if self.request.is_eager or not (self.acks_late and self.reject_on_worker_lost):
            return  # nothing redelivers this task after a worker loss
        try:
            deliveries = delivery_count(task_id, retries=self.request.retries or 0)
        except Exception:
            logger.warning(
                "cannot count the deliveries of %s %s", self.name, task_id, exc_info=True
            )
            return
        if deliveries > settings.TASK_MAX_DELIVERIES:
            logger.error("giving up task %s %s after %s deliveries", self.name, task_id, deliveries)
            raise DeliveriesExhausted(self.name, task_id, deliveries)
