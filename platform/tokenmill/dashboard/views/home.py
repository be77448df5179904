"""The overview of the current organization: how to call the API and which models it has."""

from django.conf import settings
from django.views.generic import TemplateView

from tenants import selectors
from tokenmill.catalog.selectors import base_model_list
from tokenmill.dashboard.mixins import TenantMixin
from tokenmill.dashboard.views.models import fine_tuned_models

_CURL = """curl {base_url}/chat/completions \\
  -H "Authorization: Bearer $TOKENMILL_API_KEY" \\
  -H "Content-Type: application/json" \\
  -d '{{"model": "{model}", "messages": [{{"role": "user", "content": "Hello!"}}]}}'"""

_PYTHON = """import os
from openai import OpenAI

client = OpenAI(
    base_url="{base_url}",
    api_key=os.environ["TOKENMILL_API_KEY"],
)
response = client.chat.completions.create(
    model="{model}",
    messages=[{{"role": "user", "content": "Hello!"}}],
)
print(response.choices[0].message.content)"""


class HomeView(TenantMixin, TemplateView):
    template_name = "dashboard/home.html"

    def get_context_data(self, **kwargs) -> dict:
        models = list(base_model_list(tenant=self.tenant))
        own_models = list(fine_tuned_models(self.tenant))
        base_url = f"{settings.PUBLIC_URL}/v1"
        example_model = models[0].model_id if models else "MODEL_ID"
        return {
            **super().get_context_data(**kwargs),
            "base_url": base_url,
            "models": models,
            "fine_tuned_models": own_models,
            "model_count": len(models) + len(own_models),
            "curl_snippet": _CURL.format(base_url=base_url, model=example_model),
            "python_snippet": _PYTHON.format(base_url=base_url, model=example_model),
            "member_count": selectors.member_list(tenant=self.tenant).count(),
            "active_key_count": selectors.api_key_list(tenant=self.tenant).count(),
        }
