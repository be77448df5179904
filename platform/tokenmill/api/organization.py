"""The platform API (`/api/v1/...`) for what OpenAI has no shape for:
the organization, its members, invitations and API keys."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response

from tenants import selectors, services
from tenants.keys import KeyRecord
from tenants.models import ROLE_RANK, ApiKey, ApiKeyScope, Invitation, Membership, Role
from tokenmill.api.errors import ApiError
from tokenmill.api.pagination import cursor_page, list_body, parse_limit
from tokenmill.api.views import TenantAPIView
from tokenmill.files.selectors import storage_quota_bytes, storage_used_bytes


def _ts(value) -> int | None:
    return int(value.timestamp()) if value else None


class OrganizationSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id", read_only=True)
    object = serializers.SerializerMethodField()
    name = serializers.CharField(max_length=120)
    slug = serializers.CharField(read_only=True)
    status = serializers.CharField(read_only=True)
    storage_used_bytes = serializers.SerializerMethodField(
        help_text="Bytes in the artifact store: files, checkpoints and fine-tuned models."
    )
    storage_quota_bytes = serializers.SerializerMethodField()
    created_at = serializers.SerializerMethodField()

    def get_object(self, obj) -> str:
        return "organization"

    def get_storage_used_bytes(self, obj) -> int:
        return storage_used_bytes(tenant=obj)

    def get_storage_quota_bytes(self, obj) -> int:
        return storage_quota_bytes(tenant=obj)

    def get_created_at(self, obj) -> int:
        return _ts(obj.created_at)


class MemberSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id", read_only=True)
    object = serializers.SerializerMethodField()
    email = serializers.EmailField(source="user.email", read_only=True)
    name = serializers.CharField(source="user.get_full_name", read_only=True)
    role = serializers.ChoiceField(choices=Role.choices)
    added_at = serializers.SerializerMethodField()

    def get_object(self, obj) -> str:
        return "organization.member"

    def get_added_at(self, obj) -> int:
        return _ts(obj.created_at)


class InvitationSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id", read_only=True)
    object = serializers.SerializerMethodField()
    email = serializers.EmailField(max_length=Invitation._meta.get_field("email").max_length)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)
    status = serializers.CharField(read_only=True)
    invited_at = serializers.SerializerMethodField()
    expires_at = serializers.SerializerMethodField()

    def get_object(self, obj) -> str:
        return "organization.invitation"

    def get_invited_at(self, obj) -> int:
        return _ts(obj.created_at)

    def get_expires_at(self, obj) -> int:
        return _ts(obj.expires_at)


class ApiKeySerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id", read_only=True)
    object = serializers.SerializerMethodField()
    name = serializers.CharField(max_length=100)
    redacted_value = serializers.CharField(source="redacted", read_only=True)
    prefix = serializers.CharField(read_only=True)
    last_four = serializers.CharField(read_only=True)
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=ApiKeyScope.choices),
        required=False,
        allow_empty=False,
    )
    read_only = serializers.BooleanField(default=False)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    requests_per_minute = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=1, max_value=2**31 - 1
    )
    tokens_per_minute = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=1, max_value=2**31 - 1
    )
    status = serializers.CharField(read_only=True)
    created_by = serializers.EmailField(source="created_by.email", read_only=True, default=None)
    created_at = serializers.SerializerMethodField()
    last_used_at = serializers.SerializerMethodField()

    def get_object(self, obj) -> str:
        return "organization.api_key"

    def get_created_at(self, obj) -> int:
        return _ts(obj.created_at)

    def get_last_used_at(self, obj) -> int | None:
        return _ts(obj.last_used_at)

    def to_representation(self, instance):
        body = super().to_representation(instance)
        body["expires_at"] = _ts(instance.expires_at)
        return body


class CreatedApiKeySerializer(ApiKeySerializer):
    key = serializers.CharField(
        read_only=True, help_text="The secret. Shown in this response only."
    )


class OrganizationAPIView(TenantAPIView):
    required_scope = ApiKeyScope.ORGANIZATION


class OrganizationView(OrganizationAPIView):
    object_noun = "organization"
    write_role = Role.ADMIN
    serializer_class = OrganizationSerializer

    def tenant_queryset(self, tenant):
        return type(tenant).objects.filter(pk=tenant.pk)

    @extend_schema(operation_id="organization_retrieve", tags=["organization"])
    def get(self, request):
        return Response(OrganizationSerializer(self.tenant).data)

    @extend_schema(operation_id="organization_update", tags=["organization"])
    def patch(self, request):
        serializer = OrganizationSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        tenant = services.organization_update(
            tenant=self.tenant, actor=self.actor, name=serializer.validated_data["name"]
        )
        return Response(OrganizationSerializer(tenant).data)


class PagedListMixin:
    def page(self, request, queryset, serializer_class, *, newest_first: bool = True) -> Response:
        limit = parse_limit(request.query_params.get("limit"))
        rows, has_more = cursor_page(
            queryset,
            after=request.query_params.get("after"),
            limit=limit,
            newest_first=newest_first,
        )
        return Response(list_body(serializer_class(rows, many=True).data, has_more=has_more))


class MemberListView(PagedListMixin, OrganizationAPIView):
    serializer_class = MemberSerializer

    def tenant_queryset(self, tenant):
        return selectors.member_list(tenant=tenant)

    @extend_schema(operation_id="members_list", tags=["members"])
    def get(self, request):
        return self.page(request, self.get_queryset(), MemberSerializer, newest_first=False)


class MemberDetailView(OrganizationAPIView):
    object_noun = "member"
    write_role = Role.ADMIN
    serializer_class = MemberSerializer

    def tenant_queryset(self, tenant):
        return selectors.member_list(tenant=tenant)

    @extend_schema(operation_id="members_retrieve", tags=["members"])
    def get(self, request, object_id: str):
        return Response(MemberSerializer(self.get_object()).data)

    @extend_schema(
        operation_id="members_update",
        request=inline_serializer(
            "MemberRoleUpdate", {"role": serializers.ChoiceField(choices=Role.choices)}
        ),
        tags=["members"],
    )
    def patch(self, request, object_id: str):
        membership: Membership = self.get_object()
        serializer = MemberSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        if "role" not in serializer.validated_data:
            raise serializers.ValidationError({"role": ["This field is required."]})
        if ROLE_RANK[Role(serializer.validated_data["role"])] > ROLE_RANK[Role(membership.role)]:
            require_unbounded_key(request.auth, "grant a higher role")
        membership = services.member_change_role(
            tenant=self.tenant,
            actor=self.actor,
            membership=membership,
            role=serializer.validated_data["role"],
        )
        return Response(MemberSerializer(membership).data)

    @extend_schema(operation_id="members_delete", responses={200: None}, tags=["members"])
    def delete(self, request, object_id: str):
        membership = self.get_object()
        services.member_remove(tenant=self.tenant, actor=self.actor, membership=membership)
        return Response({"id": object_id, "object": "organization.member.deleted", "deleted": True})


class InvitationListView(PagedListMixin, OrganizationAPIView):
    write_role = Role.ADMIN
    serializer_class = InvitationSerializer

    def tenant_queryset(self, tenant):
        return selectors.invitation_list(tenant=tenant)

    @extend_schema(operation_id="invitations_list", tags=["invitations"])
    def get(self, request):
        return self.page(request, self.get_queryset(), InvitationSerializer)

    @extend_schema(operation_id="invitations_create", tags=["invitations"])
    def post(self, request):
        serializer = InvitationSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        require_unbounded_key(request.auth, "invite members")
        invitation, _token = services.member_invite(
            tenant=self.tenant, actor=self.actor, **serializer.validated_data
        )
        return Response(InvitationSerializer(invitation).data, status=status.HTTP_201_CREATED)


class InvitationDetailView(OrganizationAPIView):
    object_noun = "invitation"
    write_role = Role.ADMIN
    serializer_class = InvitationSerializer

    def tenant_queryset(self, tenant):
        return selectors.invitation_list(tenant=tenant, status=None)

    @extend_schema(operation_id="invitations_retrieve", tags=["invitations"])
    def get(self, request, object_id: str):
        return Response(InvitationSerializer(self.get_object()).data)

    @extend_schema(operation_id="invitations_delete", tags=["invitations"])
    def delete(self, request, object_id: str):
        invitation: Invitation = self.get_object()
        services.invitation_revoke(tenant=self.tenant, actor=self.actor, invitation=invitation)
        invitation.refresh_from_db()
        return Response(InvitationSerializer(invitation).data)


class ApiKeyListView(PagedListMixin, OrganizationAPIView):
    serializer_class = ApiKeySerializer

    def tenant_queryset(self, tenant):
        return selectors.api_key_list(tenant=tenant)

    @extend_schema(operation_id="api_keys_list", tags=["api-keys"])
    def get(self, request):
        return self.page(request, self.get_queryset(), ApiKeySerializer)

    @extend_schema(
        operation_id="api_keys_create", responses={201: CreatedApiKeySerializer}, tags=["api-keys"]
    )
    def post(self, request):
        serializer = ApiKeySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        wanted = within_calling_key(request.auth, dict(serializer.validated_data))
        api_key, plaintext = services.api_key_create(tenant=self.tenant, actor=self.actor, **wanted)
        body = ApiKeySerializer(api_key).data
        body["key"] = plaintext
        return Response(body, status=status.HTTP_201_CREATED)


def within_calling_key(caller: KeyRecord, wanted: dict) -> dict:
    """A key cannot mint a key more powerful than itself: its scopes, expiry and rate
    limits bound the new key's, and are the defaults when the request leaves them out."""
    scopes = wanted.get("scopes") or list(caller.scopes)
    extra = sorted(set(scopes) - set(caller.scopes))
    if extra:
        raise ApiError(
            f"This API key cannot create a key with scopes it does not have: {', '.join(extra)}.",
            status_code=403,
            code="scope_escalation",
            param="scopes",
        )
    wanted["scopes"] = scopes
    if caller.expires_at is not None:
        if wanted.get("expires_at") is None:
            wanted["expires_at"] = caller.expires_at
        elif wanted["expires_at"] > caller.expires_at:
            raise ApiError(
                "The new key cannot outlive the key that creates it.",
                status_code=403,
                code="expiry_escalation",
                param="expires_at",
            )
    for limit in ("requests_per_minute", "tokens_per_minute"):
        ceiling = getattr(caller, limit)
        if ceiling is None:
            continue
        if wanted.get(limit) is None:
            wanted[limit] = ceiling
        elif wanted[limit] > ceiling:
            raise ApiError(
                f"{limit} cannot exceed the creating key's own limit ({ceiling}).",
                status_code=403,
                code="limit_escalation",
                param=limit,
            )
    return wanted


def require_unbounded_key(caller: KeyRecord, action: str) -> None:
    """Inviting someone or raising their role makes a person who outlives the calling key
    and can mint keys of their own from the dashboard: only a key with every scope, no
    expiry and no rate limits may do it (as only such a key could mint an unbounded key).
    Other keys are refused; the dashboard can always do it."""
    remedy = "Do it in the dashboard, or with a key that has every scope, no expiry and no limits."
    missing = [scope for scope in services.ALL_SCOPES if not caller.allows(scope)]
    if missing:
        raise ApiError(
            f"This API key cannot {action}: it lacks the scopes {', '.join(missing)}, "
            f"which the member could then use. {remedy}",
            status_code=403,
            code="scope_escalation",
        )
    if caller.expires_at is not None:
        raise ApiError(
            f"This API key cannot {action}: it expires, and the member's access would not. {remedy}",
            status_code=403,
            code="expiry_escalation",
        )
    limited = [
        limit
        for limit in ("requests_per_minute", "tokens_per_minute")
        if getattr(caller, limit) is not None
    ]
    if limited:
        raise ApiError(
            f"This API key cannot {action}: it has limits ({', '.join(limited)}), "
            f"and the member's own keys would not. {remedy}",
            status_code=403,
            code="limit_escalation",
        )


class ApiKeyDetailView(OrganizationAPIView):
    object_noun = "API key"
    serializer_class = ApiKeySerializer

    def tenant_queryset(self, tenant):
        return selectors.api_key_list(tenant=tenant, include_revoked=True)

    @extend_schema(operation_id="api_keys_retrieve", tags=["api-keys"])
    def get(self, request, object_id: str):
        return Response(ApiKeySerializer(self.get_object()).data)

    @extend_schema(operation_id="api_keys_delete", tags=["api-keys"])
    def delete(self, request, object_id: str):
        api_key: ApiKey = self.get_object()
        api_key = services.api_key_revoke(tenant=self.tenant, actor=self.actor, api_key=api_key)
        return Response(ApiKeySerializer(api_key).data)
