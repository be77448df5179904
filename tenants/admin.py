"""The operator console's tenant pages (/console/, staff only)."""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import Count

from tenants import services
from tenants.models import ApiKey, Invitation, Membership, Organization, Role, User

admin.site.site_header = "Tokenmill console"
admin.site.site_title = "Tokenmill console"
admin.site.index_title = "Operations"


def _is_last_owner(membership: Membership) -> bool:
    owners = Membership.objects.for_tenant(membership.tenant).filter(role=Role.OWNER)
    return membership.role == Role.OWNER and owners.count() <= 1


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

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # one at a time, through delete_model
        return actions

    def has_delete_permission(self, request, obj=None):
        memberships = obj.memberships.select_related("tenant") if obj is not None else []
        if any(_is_last_owner(membership) for membership in memberships):
            return False  # the last owner of an organization stays until someone else owns it
        return super().has_delete_permission(request, obj)

    # A deactivation reaches the user's cached keys through tenants.signals, as does a
    # deletion (which revokes them), whichever page or command makes it.

    def delete_model(self, request, obj):
        # Leaving each organization revokes the user's keys there: a key whose creator
        # is gone would otherwise pass for an operator's key, with the admin role.
        for membership in obj.memberships.select_related("tenant"):
            services.member_remove(tenant=membership.tenant, actor=None, membership=membership)
        super().delete_model(request, obj)


class MembershipInline(admin.TabularInline):
    # Read-only here: role changes and removals happen on the membership's own page,
    # which goes through the services (last owner kept, the member's keys forgotten).
    model = Membership
    extra = 0
    fields = ["user", "role", "created_at"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


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
        limits_changed = change and {"requests_per_minute", "tokens_per_minute"} & set(
            form.changed_data
        )
        super().save_model(request, obj, form, change)
        if limits_changed and not status_changed:
            services.organization_limits_changed(tenant=obj)
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


class MembershipForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ["tenant", "user", "role", "created_at"]

    def clean_role(self):
        role = self.cleaned_data["role"]
        if self.instance.pk and role != Role.OWNER and _is_last_owner(self.instance):
            raise forms.ValidationError(
                "The last owner cannot be demoted; make someone else an owner first."
            )
        return role


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    form = MembershipForm
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role", "tenant"]
    search_fields = ["user__email", "tenant__slug", "tenant__name"]
    autocomplete_fields = ["user", "tenant"]

    def get_readonly_fields(self, request, obj=None):
        # A membership never moves to another user or organization: remove it and add one.
        return ["public_id", "tenant", "user", "created_at"] if obj else ["public_id"]

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # one at a time, through member_remove
        return actions

    def has_delete_permission(self, request, obj=None):
        if obj is not None and _is_last_owner(obj):
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change):
        # Through the service, so the member's cached API keys take the new role at once.
        if change and "role" in form.changed_data:
            services.member_change_role(
                tenant=obj.tenant, actor=None, membership=obj, role=obj.role
            )
        else:
            super().save_model(request, obj, form, change)

    def delete_model(self, request, obj):
        services.member_remove(tenant=obj.tenant, actor=None, membership=obj)  # revokes keys


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
        "minted_by_operator",
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
        "minted_by_operator",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    exclude = ["hashed_key"]
    actions = ["revoke"]

    # Scope or expiry edits apply to the next request: saving forgets the cached record
    # (tenants.signals), now and after commit.

    def has_add_permission(self, request):
        # A key's plaintext must be shown once to whoever creates it: use the
        # dashboard or `manage.py create_api_key`.
        return False

    @admin.action(description="Revoke the selected API keys")
    def revoke(self, request, queryset):
        for api_key in queryset.select_related("tenant"):
            services.api_key_revoke(tenant=api_key.tenant, actor=None, api_key=api_key)
        self.message_user(request, f"Revoked {queryset.count()} key(s).", messages.SUCCESS)
