"""Public billing endpoints: Stripe's webhook and the pricing page."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from tokenmill.billing import selectors, stripe_api
from tokenmill.billing.webhooks import webhook_handle


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    try:
        event = stripe_api.webhook_event(
            payload=request.body, signature=request.headers.get("Stripe-Signature")
        )
    except stripe_api.WebhookInvalid as error:
        return JsonResponse(
            {"error": {"message": str(error), "code": "invalid_signature"}}, status=400
        )
    handled = webhook_handle(event)
    return JsonResponse({"received": True, "duplicate": not handled})


@require_GET
def pricing(request: HttpRequest) -> HttpResponse:
    return render(request, "billing/pricing.html", selectors.pricing_page())
