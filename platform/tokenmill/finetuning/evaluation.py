"""Evaluation reports: whether a succeeded job's model is better than its base model.

Every succeeded job gets one (`evaluation_create`, called where the job succeeds).
The `finetuning.evaluate` task (default queue) asks the replicas that serve the
base model, the same vLLM servers the gateway uses, to answer the held-out examples
(the validation file, else the training file's held-out split) as the base model
and as the fine-tuned model, greedily, and to score the reference answers (and,
for classification data, every label) as continuations, token by token (each token
forced, its log-probability read from the raw output). Nothing here loads a model:
the web and default workers stay free of torch.

A new fine-tune reaches the replicas a few seconds after it succeeds (the serving
agents load it): until a replica lists it, the report waits, and the reaper sends
waiting reports again (`evaluations_resend`). One that waited EVALUATION_WAIT_SECONDS
fails, saying so.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

import httpx
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from gpu_inference.formats import IGNORE_INDEX, ExampleEncoder, InvalidExample, read_examples
from gpu_inference.holdout import Holdout, held_out
from gpu_inference.serving.vllm_api import VllmClient, VllmError
from tenants.models import Organization
from tokenmill.catalog.models import Replica
from tokenmill.files.storage import get_artifact_store
from tokenmill.finetuning import evaluation_metrics as metrics
from tokenmill.finetuning.models import FineTunedModel, FineTuningJob, JobCheckpoint, JobEvaluation
from tokenmill.finetuning.services import event_add

logger = logging.getLogger(__name__)
Status = JobEvaluation.Status
TASK_EVALUATE = "finetuning.evaluate"
SAMPLES = 5
MAX_LABELS = 20  # more distinct answers than this is free text, not classification
EXTRA_ANSWER_TOKENS = 16  # room beyond the reference answer's length when generating
CONCURRENCY = 8  # requests in flight to the replica
PROMPTS_PER_REQUEST = 32


class EvaluationUnavailable(Exception):
    """The report cannot be computed for this job; the message is for the user."""


@dataclass(frozen=True)
class Example:
    prompt: dict  # the example without its last answer: {"messages": [...]} or {"prompt": str}
    answer: str

    def with_answer(self, answer: str) -> dict:
        if "messages" in self.prompt:
            return {
                "messages": [*self.prompt["messages"], {"role": "assistant", "content": answer}]
            }
        return {"prompt": self.prompt["prompt"], "completion": answer}

    @property
    def question(self) -> str:
        if "messages" in self.prompt:
            return self.prompt["messages"][-1]["content"]
        return self.prompt["prompt"]


def evaluation_create(job: FineTuningJob) -> None:
    """Called in the transaction that marks `job` succeeded: the report is computed after it commits."""
    JobEvaluation.unscoped.get_or_create(
        job=job, defaults={"tenant_id": job.tenant_id, "model_id": job.fine_tuned_model or ""}
    )
    transaction.on_commit(lambda: enqueue_evaluation(job.pk), robust=True)


def evaluation_for_model(*, tenant: Organization, model: FineTunedModel) -> JobEvaluation:
    """Make the job's report again, for `model` (one of its checkpoints made a model)."""
    with transaction.atomic():
        evaluation, _ = JobEvaluation.objects.for_tenant(tenant).update_or_create(
            job_id=model.job_id,
            defaults={
                "tenant": tenant,
                "model_id": model.model_id,
                "status": Status.PENDING,
                "report": None,
                "error": "",
                "created_at": timezone.now(),
                "started_at": None,
                "finished_at": None,
            },
        )
        event_add(model.job, f"Evaluation report requested for {model.model_id}")
        transaction.on_commit(lambda: enqueue_evaluation(model.job_id), robust=True)
    return evaluation


def enqueue_evaluation(job_pk: int) -> None:
    from workers.celery import app

    app.signature(TASK_EVALUATE, args=(job_pk,)).apply_async()


def evaluations_resend() -> int:
    """The reaper's share: reports waiting for their model to be served, and reports whose
    run stopped without an end (a worker that died); returns how many were sent."""
    stale = timezone.now() - timedelta(seconds=settings.EVALUATION_RUN_TIMEOUT)
    waiting = JobEvaluation.unscoped.filter(
        Q(status=Status.PENDING) | Q(status=Status.RUNNING, started_at__lt=stale)
    ).values_list("job_id", flat=True)
    sent = 0
    for job_pk in waiting[:100]:
        enqueue_evaluation(job_pk)
        sent += 1
    return sent


def evaluation_run(*, job_id: int) -> str:
    """Compute the report of job `job_id` if its model is served yet; returns the report's status."""
    evaluation = (
        JobEvaluation.unscoped.select_related(
            "job__base_model", "job__training_file", "job__validation_file", "job__tenant"
        )
        .filter(job_id=job_id)
        .first()
    )
    if evaluation is None or evaluation.status in (Status.SUCCEEDED, Status.FAILED):
        return evaluation.status if evaluation else "missing"
    job = evaluation.job
    now = timezone.now()
    if job.training_type != FineTuningJob.TrainingType.LORA:
        return _finish(
            evaluation,
            Status.SUCCEEDED,
            report=_report_without_serving(
                job,
                "Full fine-tunes are not served by the replicas, so only the training "
                "figures are shown.",
            ),
        )
    replica = serving_replica(job, evaluation.model_id)
    if replica is None:
        if (now - evaluation.created_at).total_seconds() > settings.EVALUATION_WAIT_SECONDS:
            return _finish(
                evaluation,
                Status.FAILED,
                error=f"The model {evaluation.model_id} was not served by any replica of "
                f"{job.base_model.model_id} within {settings.EVALUATION_WAIT_SECONDS} seconds.",
            )
        return Status.PENDING
    stale = now - timedelta(seconds=settings.EVALUATION_RUN_TIMEOUT)
    claimed = (
        JobEvaluation.unscoped.filter(pk=evaluation.pk)
        .filter(Q(status=Status.PENDING) | Q(status=Status.RUNNING, started_at__lt=stale))
        .update(status=Status.RUNNING, started_at=now)
    )
    if not claimed:  # another run has it
        replica.close()
        return Status.RUNNING
    try:
        with replica:
            report = build_report(job, evaluation.model_id, replica)
    except (httpx.HTTPError, VllmError) as error:
        logger.warning("evaluating %s: the replica failed: %r", job.public_id, error)
        JobEvaluation.unscoped.filter(pk=evaluation.pk).update(status=Status.PENDING)
        return Status.PENDING  # the reaper sends it again
    except (EvaluationUnavailable, InvalidExample, FileNotFoundError) as error:
        return _finish(evaluation, Status.FAILED, error=str(error))
    return _finish(evaluation, Status.SUCCEEDED, report=report)


def _finish(evaluation: JobEvaluation, status: str, *, report=None, error: str = "") -> str:
    with transaction.atomic():
        JobEvaluation.unscoped.filter(pk=evaluation.pk).update(
            status=status, report=report, error=error, finished_at=timezone.now()
        )
        if status == Status.SUCCEEDED:
            event_add(evaluation.job, "Evaluation report ready: " + _summary(report))
        else:
            event_add(evaluation.job, f"Evaluation report failed: {error}", level="warn")
    return status


def _summary(report: dict) -> str:
    verdict = report.get("verdict")
    if not verdict:
        return report.get("note", "training figures only")
    return (
        f"{verdict['metric_label']} {verdict['base']:.3f} for the base model, "
        f"{verdict['fine_tuned']:.3f} fine-tuned "
        f"({'better' if verdict['improved'] else 'not better'})"
    )


def serving_replica(job: FineTuningJob, model_id: str) -> VllmClient | None:
    """A client for a replica of the job's base model that lists `model_id`, or None."""
    replicas = Replica.objects.filter(base_model=job.base_model, enabled=True).order_by("pk")
    for replica in replicas:
        client = VllmClient(
            replica.url, api_key=replica.api_key, timeout=settings.EVALUATION_REQUEST_TIMEOUT
        )
        try:
            if model_id in {model["id"] for model in client.models()}:
                return client
        except (httpx.HTTPError, VllmError, KeyError, ValueError):
            pass  # down or refusing: try the next one
        client.close()
    return None


def epoch_figures(job: FineTuningJob) -> list[dict]:
    """Validation loss and token accuracy per epoch, from the checkpoint of each epoch."""
    rows = JobCheckpoint.unscoped.filter(job=job, attempt=job.attempt).order_by("step_number")
    return [
        {
            "epoch": checkpoint.epoch,
            "step": checkpoint.step_number,
            "checkpoint": checkpoint.public_id,
            "model": checkpoint.fine_tuned_model_checkpoint,
            "train_loss": checkpoint.metrics.get("train_loss_mean"),
            "train_token_accuracy": checkpoint.metrics.get("train_token_accuracy_mean"),
            "valid_loss": checkpoint.metrics.get("valid_loss"),
            "valid_token_accuracy": checkpoint.metrics.get("valid_token_accuracy"),
        }
        for checkpoint in rows
    ]


def _best_epoch(epochs: list[dict]) -> int | None:
    scored = [row for row in epochs if row["valid_loss"] is not None]
    return min(scored, key=lambda row: row["valid_loss"])["epoch"] if scored else None


def _report_without_serving(job: FineTuningJob, note: str) -> dict:
    epochs = epoch_figures(job)
    return {"epochs": epochs, "best_epoch": _best_epoch(epochs), "note": note}


def evaluation_source(job: FineTuningJob) -> tuple[dict, list[dict]]:
    """What the report is computed on, and those examples (normalized, file order)."""
    if job.validation_file is not None:
        examples = _stored_examples(job.validation_file.normalized_key)
        return {"kind": "validation_file", "file": job.validation_file.public_id}, examples
    training = _stored_examples(job.training_file.normalized_key)
    if job.holdout:
        holdout = Holdout(count=job.holdout["count"], seed=job.holdout["seed"])
        return (
            {"kind": "holdout", "file": job.training_file.public_id, "holdout": job.holdout},
            held_out(training, holdout),
        )
    # Too small to spare examples: the report says it is measured on what was trained on.
    return {"kind": "training_file", "file": job.training_file.public_id}, training


def _stored_examples(key: str) -> list[dict]:
    with get_artifact_store().local_copy(key) as path:
        return list(read_examples(path))


def _as_example(example: dict) -> Example | None:
    if "messages" in example:
        messages = example["messages"]
        if messages[-1]["role"] != "assistant" or len(messages) < 2:
            return None
        prompt = [{"role": m["role"], "content": m["content"]} for m in messages[:-1]]
        return Example(prompt={"messages": prompt}, answer=messages[-1]["content"])
    return Example(prompt={"prompt": example["prompt"]}, answer=example["completion"])


def classification_labels(job: FineTuningJob, examples: list[Example]) -> list[str] | None:
    """The label set, for a classification CSV file, or chat data whose single-turn
    answers come from a small set (at most MAX_LABELS, each seen three times on average)."""
    answers = []
    for raw in _stored_examples(job.training_file.normalized_key):
        example = _as_example(raw)
        if example is None or len(example.prompt.get("messages", [])) != 1:
            return None
        answers.append(example.answer.strip())
    labels = sorted(set(answers) | {example.answer.strip() for example in examples})
    is_csv = ((job.training_file.validation or {}).get("format")) == "classification"
    if not 2 <= len(labels) <= MAX_LABELS:
        return None
    if not is_csv and len(answers) < 3 * len(labels):
        return None
    return labels


def build_report(job: FineTuningJob, model_id: str, replica: VllmClient) -> dict:
    source, raw_examples = evaluation_source(job)
    examples = [e for raw in raw_examples if (e := _as_example(raw)) is not None]
    examples = examples[: settings.EVALUATION_MAX_EXAMPLES]
    if not examples:
        raise EvaluationUnavailable("The evaluation examples have no answers to compare with.")
    base = job.base_model
    encoder = ExampleEncoder(settings.MODEL_ROOT / base.path, context_length=base.context_length)
    labels = classification_labels(job, examples)
    prepared = []
    for example in examples:
        reference = encoder.encode(example.with_answer(example.answer))
        trained = [i for i, label in enumerate(reference[1]) if label != IGNORE_INDEX]
        if not trained:  # the prompt alone fills the context
            continue
        candidates = [example.answer.strip()] if labels is None else labels
        scored = [encoder.encode(example.with_answer(answer)) for answer in candidates]
        prepared.append((example, reference, trained, candidates, scored))
    if not prepared:
        raise EvaluationUnavailable("Every evaluation example is longer than the model's context.")
    sides = {}
    for side, served in (("base", base.model_id), ("fine_tuned", model_id)):
        sides[side] = _answer_all(replica, served, prepared, base.context_length)
    truths = [example.answer.strip() for example, *_ in prepared]
    models = {}
    for side, (answers, loss, n_tokens, label_scores) in sides.items():
        figures = {
            "model": base.model_id if side == "base" else model_id,
            **metrics.match_rates(answers, truths),
            "answer_loss": loss,
            "answer_tokens": n_tokens,
        }
        if labels is not None:
            figures["classification"] = metrics.classification_metrics(
                labels, truths, answers, label_scores
            )
        models[side] = figures
    epochs = epoch_figures(job)
    return {
        "source": {**source, "examples": len(prepared), "skipped": len(examples) - len(prepared)},
        "epochs": epochs,
        "best_epoch": _best_epoch(epochs),
        "labels": labels,
        "models": models,
        "verdict": _verdict(models, labels),
        "samples": [
            {
                "question": example.question,
                "reference": example.answer,
                "base": sides["base"][0][index],
                "fine_tuned": sides["fine_tuned"][0][index],
            }
            for index, (example, *_) in enumerate(prepared[:SAMPLES])
        ],
    }


def _answer_all(replica: VllmClient, model: str, prepared: list, context_length: int):
    """(answers, mean loss per reference token, reference tokens, label log-probabilities)."""
    sequences = []  # (token ids, the positions to score): the reference, then each label
    for _example, reference, trained, _candidates, scored in prepared:
        sequences.append((reference[0], trained))
        sequences.extend(
            (ids, [i for i, label in enumerate(mask) if label != IGNORE_INDEX])
            for ids, mask in scored
        )
    with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
        # Concurrent requests: vLLM batches them, several times faster than one by one.
        answers = list(
            pool.map(lambda item: _generate(replica, model, item, context_length), prepared)
        )
        totals = _sequence_logprobs(replica, model, sequences, pool)
    loss_sum, n_tokens, label_scores, cursor = 0.0, 0, [], 0
    for _example, _reference, trained, _candidates, scored in prepared:
        loss_sum -= totals[cursor]
        n_tokens += len(trained)
        label_scores.append(totals[cursor + 1 : cursor + 1 + len(scored)])
        cursor += 1 + len(scored)
    return answers, loss_sum / n_tokens, n_tokens, label_scores


def _generate(replica: VllmClient, model: str, item, context_length: int) -> str:
    example, _reference, trained, _candidates, _scored = item
    max_tokens = max(1, min(len(trained) + EXTRA_ANSWER_TOKENS, context_length - trained[0]))
    if "messages" in example.prompt:
        return replica.chat(model, example.prompt["messages"], max_tokens=max_tokens)
    return replica.complete(model, example.prompt["prompt"], max_tokens=max_tokens)


def _sequence_logprobs(
    replica: VllmClient, model: str, sequences: list[tuple[list[int], list[int]]], pool
) -> list[float]:
    """The summed log-probability of each sequence's tokens at its positions, each given
    the tokens before it. Positions that ask for the same token share requests."""
    wanted: dict[int, list[tuple[int, list[int]]]] = {}
    for index, (ids, positions) in enumerate(sequences):
        for position in positions:
            wanted.setdefault(ids[position], []).append((index, ids[:position]))
    batches = [
        (token, rows[start : start + PROMPTS_PER_REQUEST])
        for token, rows in wanted.items()
        for start in range(0, len(rows), PROMPTS_PER_REQUEST)
    ]

    def score(batch):
        token, rows = batch
        return rows, replica.forced_token_logprobs(model, [prefix for _, prefix in rows], token)

    totals = [0.0] * len(sequences)
    for rows, logprobs in pool.map(score, batches):
        for (index, _), logprob in zip(rows, logprobs, strict=True):
            totals[index] += logprob
    return totals


def _verdict(models: dict, labels: list[str] | None) -> dict:
    """One figure that says whether the fine-tune helped: accuracy for classification,
    else the normalized match where either side matched, else the answer loss."""
    base, tuned = models["base"], models["fine_tuned"]
    if labels is not None:
        key, label, higher = "accuracy", "accuracy", True
        pick = lambda side: side["classification"]["accuracy"]  # noqa: E731
    elif base["normalized_match"] or tuned["normalized_match"]:
        key, label, higher = "normalized_match", "normalized match", True
        pick = lambda side: side["normalized_match"]  # noqa: E731
    else:
        key, label, higher = "answer_loss", "loss on the reference answers", False
        pick = lambda side: side["answer_loss"]  # noqa: E731
    base_value, tuned_value = pick(base), pick(tuned)
    improved = tuned_value > base_value if higher else tuned_value < base_value
    return {
        "metric": key,
        "metric_label": label,
        "higher_is_better": higher,
        "base": base_value,
        "fine_tuned": tuned_value,
        "improved": improved,
    }
