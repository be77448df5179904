from django.db import migrations, models


def mark_operator_keys(apps, schema_editor):
    # Until now a NULL creator meant "minted by an operator": say so explicitly.
    ApiKey = apps.get_model("tenants", "ApiKey")
    ApiKey._default_manager.filter(created_by__isnull=True).update(minted_by_operator=True)


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0002_quotas"),
    ]

    operations = [
        migrations.AddField(
            model_name="apikey",
            name="minted_by_operator",
            field=models.BooleanField(
                default=False,
                help_text="Minted from the console or a management command; acts as an admin.",
            ),
        ),
        migrations.RunPython(mark_operator_keys, migrations.RunPython.noop),
    ]
