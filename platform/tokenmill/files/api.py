"""`/v1/files`: uploads, in OpenAI's shapes, plus our `validation` report on each file."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import FormParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from tenants.models import ApiKeyScope
from tokenmill.api.errors import ApiError
from tokenmill.api.pagination import cursor_page, list_body, parse_limit
from tokenmill.api.views import TenantAPIView
from tokenmill.files import downloads, selectors, services
from tokenmill.files.models import File
from tokenmill.files.multipart import UploadParser

# OpenAI accepts up to 10,000 files a page; so do we, so no SDK call is refused.
MAX_PAGE = 10_000
ORDERS = ("asc", "desc")

FILE_OBJECT_FIELDS = {
    "id": serializers.CharField(),
    "object": serializers.CharField(default="file"),
    "bytes": serializers.IntegerField(),
    "created_at": serializers.IntegerField(),
    "filename": serializers.CharField(),
    "purpose": serializers.ChoiceField(choices=File.Purpose.choices),
    "status": serializers.ChoiceField(choices=File.Status.choices),
    "status_details": serializers.CharField(allow_null=True),
    "expires_at": serializers.IntegerField(allow_null=True),
    "validation": serializers.JSONField(
        allow_null=True,
        help_text="The validation report of a fine-tune file: errors by line, warnings "
        "and statistics; null until validated, and for other purposes.",
    ),
}
FileObjectSerializer = inline_serializer("FileObject", FILE_OBJECT_FIELDS)
FileListSerializer = inline_serializer(
    "FileList",
    {
        "object": serializers.CharField(default="list"),
        "data": inline_serializer("FileObject", FILE_OBJECT_FIELDS, many=True),
        "has_more": serializers.BooleanField(),
        "first_id": serializers.CharField(allow_null=True),
        "last_id": serializers.CharField(allow_null=True),
    },
)
FileUploadSerializer = inline_serializer(
    "FileUpload",
    {
        "file": serializers.FileField(),
        "purpose": serializers.ChoiceField(choices=File.Purpose.choices),
    },
)
FileDeletedSerializer = inline_serializer(
    "FileDeleted",
    {
        "id": serializers.CharField(),
        "object": serializers.CharField(default="file"),
        "deleted": serializers.BooleanField(),
    },
)


def file_body(file: File) -> dict:
    return {
        "id": file.public_id,
        "object": "file",
        "bytes": file.bytes,
        "created_at": int(file.created_at.timestamp()),
        "filename": file.filename,
        "purpose": file.purpose,
        "status": file.status,
        "status_details": file.status_details or None,
        "expires_at": None,
        "validation": file.validation,
    }


class FilesAPIView(TenantAPIView):
    required_scope = ApiKeyScope.FILES
    object_noun = "file"

    def tenant_queryset(self, tenant):
        return selectors.file_list(tenant=tenant)


class FileListView(FilesAPIView):
    # Uploads are multipart, as OpenAI's; a JSON body cannot carry a file.
    parser_classes = [UploadParser, FormParser]

    @extend_schema(
        operation_id="files_list",
        parameters=[
            OpenApiParameter("purpose", str, enum=File.Purpose.values),
            OpenApiParameter("limit", int),
            OpenApiParameter("after", str),
            OpenApiParameter("order", str, enum=ORDERS, default="desc"),
        ],
        responses={200: FileListSerializer},
        tags=["files"],
    )
    def get(self, request):
        params = request.query_params
        purpose = services.purpose_filter_check(params.get("purpose"))
        order = params.get("order") or "desc"
        if order not in ORDERS:
            raise ApiError(
                f"Invalid order {order!r}: use 'asc' or 'desc'.",
                code="invalid_value",
                param="order",
            )
        files = self.get_queryset()
        rows, has_more = cursor_page(
            files.filter(purpose=purpose) if purpose else files,
            after=params.get("after"),
            limit=parse_limit(params.get("limit"), maximum=MAX_PAGE),
            newest_first=order == "desc",
        )
        return Response(list_body([file_body(file) for file in rows], has_more=has_more))

    @extend_schema(
        operation_id="files_create",
        request={"multipart/form-data": FileUploadSerializer},
        responses={200: FileObjectSerializer},
        tags=["files"],
    )
    def post(self, request):
        # Before request.data: reading it is what spools the upload to disk.
        services.upload_size_check(content_length=request.META.get("CONTENT_LENGTH"))
        file = services.file_create(
            tenant=self.tenant,
            upload=_single(request.FILES, "file"),
            purpose=_single(request.data, "purpose"),
        )
        return Response(file_body(file))


def _single(fields, name: str):
    """The one value of a multipart field; a repeated field is refused, not silently cut to its last."""
    values = fields.getlist(name) if hasattr(fields, "getlist") else [fields.get(name)]
    if len(values) > 1:
        raise ApiError(
            f"The request has {len(values)} '{name}' fields; send exactly one.",
            code="duplicate_parameter",
            param=name,
        )
    return values[0] if values else None


class FileDetailView(FilesAPIView):
    @extend_schema(
        operation_id="files_retrieve", responses={200: FileObjectSerializer}, tags=["files"]
    )
    def get(self, request, object_id: str):
        return Response(file_body(self.get_object()))

    @extend_schema(
        operation_id="files_delete", responses={200: FileDeletedSerializer}, tags=["files"]
    )
    def delete(self, request, object_id: str):
        file = self.get_object()
        services.file_delete(tenant=self.tenant, file=file)
        return Response({"id": file.public_id, "object": "file", "deleted": True})


class JSONErrorsWhateverTheAccept(BaseContentNegotiation):
    """The content is bytes whatever the client accepts (the SDK asks for application/binary);
    the only thing rendered here is an error, and errors are JSON."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return JSONRenderer(), JSONRenderer.media_type


class FileContentView(FilesAPIView):
    content_negotiation_class = JSONErrorsWhateverTheAccept

    @extend_schema(
        operation_id="files_content",
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
        tags=["files"],
    )
    def get(self, request, object_id: str):
        file = self.get_object()
        try:
            response = downloads.content_response(request._request, file)
        except FileNotFoundError:  # deleted since the row was read
            raise ApiError(
                f"No file with id {object_id!r}.", status_code=404, code="not_found", param="id"
            ) from None
        return response
