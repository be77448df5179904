"""The playground: chat with any model the organization may use, streamed token by token.

The page posts OpenAI's chat body to `playground/chat`, which runs it through the
gateway's own request path (tokenmill.gateway.proxy) as the signed-in member of the
session's organization: same checks, same routing, same streams, same errors.
"""

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views import View
from django.views.decorators.http import require_POST

from tenants.models import Organization, Role
from tokenmill.catalog import selectors as catalog_selectors
from tokenmill.catalog.models import BaseModel
from tokenmill.dashboard.mixins import TenantMixin, current_membership
from tokenmill.finetuning import selectors as finetuning_selectors
from tokenmill.gateway import params, proxy
from tokenmill.gateway.callers import Caller, member_caller
from tokenmill.gateway.errors import GatewayError


def playground_models(*, tenant: Organization) -> list[dict]:
    """The chat models the organization may use: base models, then its own fine-tunes."""
    base = [
        {"id": model.model_id, "label": model.display_name, "group": "Base models"}
        for model in catalog_selectors.base_model_list(tenant=tenant).filter(
            kind=BaseModel.Kind.CHAT
        )
    ]
    own = [
        {"id": model.model_id, "label": model.model_id, "group": "Your fine-tuned models"}
        for model in finetuning_selectors.fine_tuned_model_list(tenant=tenant)
    ]
    return base + own


class PlaygroundView(TenantMixin, View):
    def get(self, request, *args, **kwargs) -> HttpResponse:
        models = playground_models(tenant=self.tenant)
        return render(
            request,
            "dashboard/playground.html",
            {
                "active": "playground",
                "models": models,
                "can_chat": self.has_role(Role.MEMBER) and self.tenant.is_active,
                "chosen": request.GET.get("model") or (models[0]["id"] if models else ""),
            },
        )


def _session_caller(request: HttpRequest) -> Caller:
    if not request.user.is_authenticated:
        raise GatewayError("Log in to use the playground.", status=401, code="not_logged_in")
    membership = current_membership(request)
    if membership is None:
        raise GatewayError(
            "Create or join an organization to use the playground.",
            status=403,
            code="no_organization",
        )
    found = member_caller(
        membership, role_refusal="Your role ({role}) cannot run models; it needs member or above."
    )
    if isinstance(found, GatewayError):
        raise found
    return found


@require_POST
async def playground_chat(request: HttpRequest) -> HttpResponse:
    request_id = proxy.new_request_id()
    try:
        caller = await sync_to_async(_session_caller)(request)
    except GatewayError as error:
        reply = proxy.error_reply(error)
    else:
        reply = await proxy.handle(
            endpoint=params.CHAT, raw_body=request.body, caller=caller, request_id=request_id
        )
    headers = {key.decode(): value.decode() for key, value in reply.headers}
    headers["x-request-id"] = request_id
    if reply.stream is not None:
        return StreamingHttpResponse(reply.stream, status=reply.status, headers=headers)
    return HttpResponse(reply.body, status=reply.status, headers=headers)
