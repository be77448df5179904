"""Write every base model's adapter manifest again and wake the serving agents."""

from django.core.management.base import BaseCommand

from tokenmill.catalog.models import BaseModel
from tokenmill.finetuning.adapters import adapters_publish


class Command(BaseCommand):
    help = "Publish the fine-tuned adapters of each active base model to the serving fleet."

    def handle(self, *args, **options):
        for base_model in BaseModel.objects.filter(status=BaseModel.Status.ACTIVE):
            if not base_model.supports_fine_tuning:
                continue
            manifest = adapters_publish(base_model=base_model)
            self.stdout.write(f"{base_model.model_id}: {len(manifest.adapters)} adapters")
