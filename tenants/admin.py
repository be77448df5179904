"""The operator console's tenant pages (/console/, staff only)."""

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import Count

from tenants import services
from tenants.keys import forget_key
from tenants.models import ApiKey, Invitation, Membership, Organization, User

admin.site.site_header = "Tokenmill console"
admin.site.site_title = "Tokenmill console"
admin.site.index_title = "Operations"


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "first_name", "last_name", "is_staff", "is_active", "date_joined"]
    search_fields = ["email", "first_name", "last_name"]
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        ("Personal info", {"fields": ["first_name", "last_name"]}),
        (
            "Permissions",
            {"fields": ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]},
        ),
        ("Important dates", {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "password1", "password2"]})]


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]
    autocomplete_fields = ["user"]


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    extra = 0
    fields = ["name", "redacted", "scopes", "read_only", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "status", "member_count", "created_at"]
    list_filter = ["status", "created_at"]
    search_fields = ["slug", "name", "public_id", "memberships__user__email"]
    readonly_fields = ["public_id", "created_at"]
    inlines = [MembershipInline, ApiKeyInline]
    actions = ["suspend", "reactivate"]

    def get_queryset(self, request):
        return (
            super().get_queryset(request).annotate(member_count=Count("memberships", distinct=True))
        )

    @admin.display(ordering="member_count", description="members")
    def member_count(self, organization):
        return organization.member_count

    def save_model(self, request, obj, form, change):
        # Status changes go through the service so cached API keys are forgotten at once.
        status_changed = change and "status" in form.changed_data
        super().save_model(request, obj, form, change)
        if status_changed:
            services.organization_set_status(
                tenant=obj, status=obj.status, reason=obj.suspended_reason
            )

    @admin.action(description="Suspend the selected organizations (their API keys stop working)")
    def suspend(self, request, queryset):
        for organization in queryset:
            services.organization_set_status(
                tenant=organization,
                status=Organization.Status.SUSPENDED,
                reason="Suspended by an operator",
            )
        self.message_user(
            request, f"Suspended {queryset.count()} organization(s).", messages.SUCCESS
        )

    @admin.action(description="Reactivate the selected organizations")
    def reactivate(self, request, queryset):
        for organization in queryset:
            services.organization_set_status(tenant=organization, status=Organization.Status.ACTIVE)
        self.message_user(
            request, f"Reactivated {queryset.count()} organization(s).", messages.SUCCESS
        )


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role", "tenant"]
    search_fields = ["user__email", "tenant__slug", "tenant__name"]
    autocomplete_fields = ["user", "tenant"]
    readonly_fields = ["public_id"]


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["email", "tenant", "role", "status", "created_at", "expires_at"]
    list_filter = ["status", "role"]
    search_fields = ["email", "tenant__slug"]
    readonly_fields = ["public_id", "token_hash", "invited_by", "created_at", "accepted_at"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "redacted",
        "tenant",
        "created_by",
        "status",
        "created_at",
        "last_used_at",
    ]
    list_filter = ["read_only", ("revoked_at", admin.EmptyFieldListFilter), "tenant"]
    search_fields = ["name", "prefix", "public_id", "tenant__slug", "created_by__email"]
    readonly_fields = [
        "public_id",
        "tenant",
        "prefix",
        "last_four",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    exclude = ["hashed_key"]
    actions = ["revoke"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        forget_key(obj.prefix)  # scope or expiry edits apply to the next request

    def has_add_permission(self, request):
        # A key's plaintext must be shown once to whoever creates it: use the
        # dashboard or `manage.py create_api_key`.
        return False

    @admin.action(description="Revoke the selected API keys")
    def revoke(self, request, queryset):
        for api_key in queryset.select_related("tenant"):
            services.api_key_revoke(tenant=api_key.tenant, actor=None, api_key=api_key)
        self.message_user(request, f"Revoked {queryset.count()} key(s).", messages.SUCCESS)
