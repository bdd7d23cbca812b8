"""Encrypt API keys stored in plaintext before issue #3, and keep their masks."""

from django.db import migrations, models


def encrypt_plaintext_keys(apps, schema_editor):
    from models_registry import crypto
    from models_registry.models import mask_api_key

    ModelConfig = apps.get_model("models_registry", "ModelConfig")
    rows = ModelConfig.objects.exclude(api_key="")
    if not rows.exists():
        return
    crypto.create_key_file()
    for row in rows.iterator():
        if crypto.is_token(row.api_key):
            continue
        row.api_key_hint = mask_api_key(row.api_key)
        row.api_key = crypto.encrypt(row.api_key)
        row.save(update_fields=["api_key", "api_key_hint"])


def decrypt_to_plaintext(apps, schema_editor):
    from models_registry import crypto

    ModelConfig = apps.get_model("models_registry", "ModelConfig")
    for row in ModelConfig.objects.exclude(api_key="").iterator():
        if crypto.is_token(row.api_key):
            row.api_key = crypto.decrypt(row.api_key)
            row.save(update_fields=["api_key"])


class Migration(migrations.Migration):
    dependencies = [
        ("models_registry", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="modelconfig",
            name="api_key_hint",
            field=models.CharField(blank=True, default="", max_length=32, verbose_name="API key"),
        ),
        migrations.AlterField(
            model_name="modelconfig",
            name="api_key",
            field=models.TextField(blank=True, default="", verbose_name="API key (encrypted)"),
        ),
        migrations.RunPython(encrypt_plaintext_keys, decrypt_to_plaintext),
    ]
