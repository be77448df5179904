"""OpenAI's list shape with cursor pagination: `?after=<id>&limit=<n>`."""

from django.db.models import Q, QuerySet

from tokenmill.api.errors import ApiError

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def parse_limit(raw: str | None, *, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    if raw in (None, ""):
        return default
    try:
        limit = int(raw)
    except ValueError:
        raise ApiError(
            f"limit must be a whole number, got {raw!r}.", code="invalid_value", param="limit"
        ) from None
    if not 1 <= limit <= maximum:
        raise ApiError(
            f"limit must be between 1 and {maximum}, got {limit}.",
            code="invalid_value",
            param="limit",
        )
    return limit


def cursor_page(
    queryset: QuerySet, *, after: str | None, limit: int, newest_first: bool = True
) -> tuple[list, bool]:
    """One page of `queryset` ordered by creation, starting after the object whose public_id is `after`.

    An `after` that names no object of this queryset (another tenant's included) is a 400,
    the same answer whether or not it exists elsewhere.
    """
    ordering = ("-created_at", "-id") if newest_first else ("created_at", "id")
    queryset = queryset.order_by(*ordering)
    if after:
        cursor = (
            None
            if "\x00" in after
            else queryset.filter(public_id=after).values("created_at", "id").first()
        )
        if cursor is None:
            raise ApiError(
                f"No object with id {after!r} to page after.", code="invalid_value", param="after"
            )
        if newest_first:
            queryset = queryset.filter(
                Q(created_at__lt=cursor["created_at"])
                | Q(created_at=cursor["created_at"], id__lt=cursor["id"])
            )
        else:
            queryset = queryset.filter(
                Q(created_at__gt=cursor["created_at"])
                | Q(created_at=cursor["created_at"], id__gt=cursor["id"])
            )
    rows = list(queryset[: limit + 1])
    return rows[:limit], len(rows) > limit


def list_body(data: list[dict], *, has_more: bool = False) -> dict:
    return {
        "object": "list",
        "data": data,
        "has_more": has_more,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }
