"""The console's billing pages: accounts and plans, credits (who and why), statements and
revenue, invoices, the Stripe sync's state with a retry, processed webhooks."""

from django.contrib import admin, messages
from django.db.models import Sum

from tokenmill.billing import sync
from tokenmill.billing.accounts import account_for
from tokenmill.billing.models import (
    Account,
    CreditGrant,
    Invoice,
    MeterEvent,
    Statement,
    WebhookEvent,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    """Plans and limits are the operator's: Enterprise limits (and prices, under Catalog >
    Price overrides) are set here per organization."""

    list_display = [
        "tenant",
        "plan",
        "monthly_spend_limit",
        "has_payment_method",
        "subscription_status",
        "payment_failed_at",
        "billing_hold",
    ]
    list_filter = ["plan", "has_payment_method"]
    search_fields = ["tenant__slug", "tenant__name", "stripe_customer_id"]
    fields = [
        "tenant",
        "plan",
        "monthly_spend_limit",
        "stripe_customer_id",
        "stripe_subscription_id",
        "subscription_status",
        "has_payment_method",
        "payment_failed_at",
        "limit_alert_month",
    ]
    readonly_fields = [
        "tenant",
        "stripe_customer_id",
        "stripe_subscription_id",
        "subscription_status",
        "has_payment_method",
        "payment_failed_at",
        "limit_alert_month",
    ]

    def has_add_permission(self, request) -> bool:
        return False  # every organization gets its account when it is created

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(boolean=True, description="inference paused")
    def billing_hold(self, obj: Account) -> bool:
        return obj.tenant.billing_hold


@admin.register(CreditGrant)
class CreditGrantAdmin(admin.ModelAdmin):
    """Grants and adjustments are added, never edited or deleted: a mistake is corrected
    by an adjustment, so every change keeps who made it and why."""

    list_display = ["created_at", "tenant", "kind", "amount", "reason", "granted_by"]
    list_filter = ["kind"]
    search_fields = ["tenant__slug", "reason", "stripe_reference"]
    fields = ["tenant", "kind", "amount", "reason"]
    autocomplete_fields = ["tenant"]

    def formfield_for_choice_field(self, db_field, request, **kwargs):
        if db_field.name == "kind":
            kwargs["choices"] = [
                (CreditGrant.Kind.GRANT, CreditGrant.Kind.GRANT.label),
                (CreditGrant.Kind.ADJUSTMENT, CreditGrant.Kind.ADJUSTMENT.label),
            ]
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj: CreditGrant, form, change) -> None:
        if change:
            return
        account_for(tenant=obj.tenant)
        obj.granted_by = request.user
        obj.reason = obj.reason.strip()
        super().save_model(request, obj, form, change)


@admin.register(Statement)
class StatementAdmin(ReadOnlyAdmin):
    """Revenue by organization and month: the closed months' stored statements."""

    list_display = ["month", "tenant", "subtotal", "credits_applied", "total"]
    list_filter = ["month"]
    search_fields = ["tenant__slug", "tenant__name"]
    date_hierarchy = "month"
    ordering = ["-month", "tenant__slug"]

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        changelist = getattr(response, "context_data", {}).get("cl")
        if changelist is not None:
            sums = changelist.queryset.aggregate(
                subtotal=Sum("subtotal"), credits=Sum("credits_applied"), total=Sum("total")
            )
            messages.info(
                request,
                f"Revenue of the statements listed: ${sums['total'] or 0} charged "
                f"(${sums['subtotal'] or 0} of usage, ${sums['credits'] or 0} paid by credits).",
            )
        return response


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdmin):
    list_display = ["stripe_invoice_id", "tenant", "status", "amount_due_cents", "updated_at"]
    list_filter = ["status"]
    search_fields = ["stripe_invoice_id", "tenant__slug"]


@admin.register(MeterEvent)
class MeterEventAdmin(ReadOnlyAdmin):
    """The Stripe sync: what waits, how long, and what keeps failing."""

    list_display = [
        "identifier",
        "tenant",
        "token_type",
        "value",
        "status",
        "attempts",
        "last_error",
        "created_at",
        "sent_at",
    ]
    list_filter = ["status", "token_type"]
    search_fields = ["identifier", "tenant__slug"]
    actions = ["retry_failed"]

    def changelist_view(self, request, extra_context=None):
        status = sync.sync_status()
        if not status["configured"]:
            messages.info(request, "Stripe is not configured: billing runs ledger-only.")
        else:
            level = messages.WARNING if status["failing"] else messages.INFO
            messages.add_message(
                request,
                level,
                f"Billing sync: {status['waiting']} events waiting (oldest "
                f"{status['lag_seconds']} s), {status['failing']} failing, "
                f"{status['sent']} sent.",
            )
        return super().changelist_view(request, extra_context)

    @admin.action(description="Retry the selected waiting events now")
    def retry_failed(self, request, queryset) -> None:
        reset = sync.failed_events_retry(ids=list(queryset.values_list("pk", flat=True)))
        result = sync.meter_events_send()
        self.message_user(
            request,
            f"{reset} failing events reset; {result.sent} sent, {result.cancelled} cancelled, "
            f"{result.failed} still failing.",
        )


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = ["event_id", "event_type", "processed_at"]
    list_filter = ["event_type"]
    search_fields = ["event_id"]
