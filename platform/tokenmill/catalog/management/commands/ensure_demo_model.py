import json
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from tokenmill.catalog.models import BaseModel
from tokenmill.catalog.services import routes_changed


class Command(BaseCommand):
    help = (
        "Build the demo base model tiny-chat under MODEL_ROOT if it is missing (no download: "
        "our own corpus, tokenizer and training; a few minutes on two cores, once), then "
        "record its size in the catalog."
    )

    def handle(self, *args, **options):
        from gpu_inference.demo_model import METADATA_FILE, ensure_demo_model

        target = settings.MODEL_ROOT / "tiny-chat"
        if not target.is_dir():
            self.stdout.write(
                f"Building the demo base model tiny-chat in {target} (first start only)…"
            )
        started = time.monotonic()
        path = ensure_demo_model(settings.MODEL_ROOT, name="tiny-chat")
        facts = json.loads((path / METADATA_FILE).read_text())
        BaseModel.objects.filter(model_id="tiny-chat").update(
            parameter_count=facts["parameters"], context_length=facts["context"]
        )
        routes_changed()  # the gateway's routes carry the context length
        took = time.monotonic() - started
        self.stdout.write(
            f"Demo model ready: {facts['parameters']:,} parameters, validation loss "
            f"{facts['validation_loss']}" + (f", built in {took:.0f} s." if took > 5 else ".")
        )
