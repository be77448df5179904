from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.template.response import TemplateResponse
from django.urls import path, reverse

from tokenmill.metering import console
from tokenmill.metering.models import Kind, LedgerEntry
from tokenmill.metering.ranges import UsageRangeForm, presets, today

ORGANIZATIONS_PER_PAGE = 100


@admin.register(LedgerEntry)
class LedgerEntryAdmin(admin.ModelAdmin):
    """Usage by organization, hour, model, key and kind: read-only, the ledger is exact."""

    change_list_template = "admin/metering/ledgerentry/change_list.html"
    list_display = [
        "tenant",
        "hour",
        "model",
        "kind",
        "key_public_id",
        "requests",
        "prompt_tokens",
        "completion_tokens",
    ]
    list_filter = ["kind", "hour", "tenant"]
    search_fields = ["tenant__slug", "model", "key_public_id"]
    date_hierarchy = "hour"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_urls(self):
        return [
            path(
                "by-organization/",
                self.admin_site.admin_view(self.by_organization_view),
                name="metering_usage_by_organization",
            ),
            *super().get_urls(),
        ]

    def by_organization_view(self, request):
        """Every organization's usage over a date range: sortable, linked, staff only."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = UsageRangeForm(request.GET)
        sort = request.GET.get("o", console.DEFAULT_SORT)
        if sort.removeprefix("-") not in console.SORTS:
            sort = console.DEFAULT_SORT
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Usage by organization",
            "sort": sort,
            "form": form,
            "presets": [
                (label, span, f"?start={span.start:%Y-%m-%d}&end={span.end:%Y-%m-%d}&o={sort}")
                for label, span in presets(today())
            ],
        }
        if not form.is_valid():
            return TemplateResponse(
                request, "admin/metering/usage_by_organization.html", context, status=400
            )
        span = form.range
        window = {"start": span.start_time, "end": span.end_time}
        page = Paginator(console.organization_usage(**window, sort=sort), ORGANIZATIONS_PER_PAGE)
        page = page.get_page(request.GET.get("p"))
        kinds = [(kind.value, kind.label) for kind in Kind]
        totals = console.usage_totals(**window)
        context.update(
            form=UsageRangeForm({"start": f"{span.start:%Y-%m-%d}", "end": f"{span.end:%Y-%m-%d}"}),
            span=span,
            page=page,
            rows=[
                {
                    "organization": organization,
                    "url": reverse("admin:tenants_organization_change", args=[organization.pk]),
                    "kinds": [getattr(organization, f"kind_{kind}_tokens") for kind, _ in kinds],
                }
                for organization in page
            ],
            totals=totals,
            totals_by_kind=[totals[f"kind_{kind}_tokens"] for kind, _ in kinds],
            columns=_columns(sort, span, kinds),
        )
        return TemplateResponse(request, "admin/metering/usage_by_organization.html", context)


def _columns(sort: str, span, kinds: list[tuple[str, str]]) -> list[dict]:
    """The table's headers: each a link that sorts by it (again: the other way round)."""
    base = f"?start={span.start:%Y-%m-%d}&end={span.end:%Y-%m-%d}"
    headers = [
        ("organization", "Organization"),
        ("requests", "Requests"),
        ("prompt", "Prompt tokens"),
        ("completion", "Completion tokens"),
        ("total", "Total tokens"),
        *((f"kind_{kind}", f"Kind: {label.lower()}") for kind, label in kinds),
    ]
    columns = []
    for name, label in headers:
        current = sort.removeprefix("-") == name
        descending = sort.startswith("-")
        # A first click sorts names A to Z and figures from the largest.
        flip = ("" if descending else "-") if current else ("" if name == "organization" else "-")
        columns.append(
            {
                "label": label,
                "url": f"{base}&o={flip}{name}",
                "sorted": ("descending" if descending else "ascending") if current else "",
                "numeric": name != "organization",
            }
        )
    return columns
