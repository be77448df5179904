"""Cached key records follow every change to what they hold, by whatever path it is made.

A record holds the key, its creator's role and activity, and the organization's slug
and status (an organization's other fields do not touch the records). Each receiver
only forgets the affected records (now and after commit);
queryset `.update()` calls do not send signals, so the services forget explicitly too.
"""

from django.db.models.signals import post_delete, post_save, pre_delete, pre_save
from django.dispatch import receiver

from tenants import keys, services
from tenants.models import ApiKey, Membership, Organization, User


@receiver(pre_delete, sender=User, dispatch_uid="tenants.revoke_keys_of_deleted_user")
def _revoke_keys_of_deleted_user(sender, instance: User, **kwargs) -> None:
    services.user_api_keys_revoke(user=instance)


@receiver(post_save, sender=User, dispatch_uid="tenants.forget_keys_of_changed_user")
def _forget_keys_of_changed_user(
    sender, instance: User, created=False, update_fields=None, **kwargs
) -> None:
    if created:
        return  # no keys yet
    if update_fields is None or "is_active" in update_fields:  # not on every login
        services.user_api_keys_forget(user=instance)


@receiver(post_save, sender=Membership, dispatch_uid="tenants.forget_keys_of_saved_membership")
@receiver(post_delete, sender=Membership, dispatch_uid="tenants.forget_keys_of_gone_membership")
def _forget_keys_of_membership(sender, instance: Membership, **kwargs) -> None:
    api_keys = ApiKey.unscoped.filter(tenant_id=instance.tenant_id, created_by_id=instance.user_id)
    keys.forget_keys(list(api_keys.values_list("prefix", flat=True)))


@receiver(pre_save, sender=Organization, dispatch_uid="tenants.note_organization_key_fields")
def _note_organization_key_fields(
    sender, instance: Organization, raw=False, update_fields=None, **kwargs
) -> None:
    """Note whether this save changes what key records carry: billing and metering save
    other fields often, and forgetting every key then would send each to the database."""
    fields = keys.KeyRecord.ORGANIZATION_FIELDS
    if instance.pk is None or (update_fields is not None and not fields & set(update_fields)):
        instance._key_fields_changed = False
        return
    stored = Organization.objects.filter(pk=instance.pk).values(*fields).first()
    instance._key_fields_changed = stored is None or any(
        stored[name] != getattr(instance, name) for name in fields
    )


@receiver(post_save, sender=Organization, dispatch_uid="tenants.forget_keys_of_organization")
def _forget_keys_of_organization(sender, instance: Organization, created=False, **kwargs) -> None:
    if not created and getattr(instance, "_key_fields_changed", True):
        keys.forget_keys(list(instance.api_keys.values_list("prefix", flat=True)))


@receiver(post_save, sender=ApiKey, dispatch_uid="tenants.forget_saved_key")
@receiver(post_delete, sender=ApiKey, dispatch_uid="tenants.forget_deleted_key")
def _forget_key(sender, instance: ApiKey, **kwargs) -> None:
    keys.forget_keys([instance.prefix])
