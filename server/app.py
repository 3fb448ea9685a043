"""create_app(settings) -> Litestar: the list of domain plugins, nothing else."""

from __future__ import annotations

from litestar import Litestar, Router
from litestar.datastructures import ResponseHeader
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import YamlRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from server.api_docs import CONTENT_SECURITY_POLICY, ApiDocsPage
from server.audit.plugin import AuditPlugin
from server.auth import allow
from server.auth.guards import PUBLIC
from server.core import CorePlugin
from server.credentials.plugin import CredentialsPlugin
from server.identity.plugin import IdentityPlugin
from server.identity.sms import SmsSender
from server.onecard.plugin import OnecardPlugin
from server.openapi_contracts import document_contracts
from server.openapi_errors import ErrorResponsesPlugin
from server.ops.plugin import OpsPlugin
from server.platform.plugin import PlatformPlugin
from server.settings import Settings
from server.terminals.plugin import TerminalsPlugin
from server.terminals.scan_endpoint import scan_contract
from server.web.plugin import WebPlugin

# The plugins' types: `yima` asks those with `add_cli_commands` for their commands (server/cli_support.py), in
# this order (that of `yima --help`). tests/test_cli.py holds this set to the plugins create_app lists below.
PLUGIN_TYPES = (
    CorePlugin,
    OpsPlugin,
    IdentityPlugin,
    CredentialsPlugin,
    AuditPlugin,
    OnecardPlugin,
    TerminalsPlugin,
    PlatformPlugin,
    WebPlugin,
    ErrorResponsesPlugin,
)


def create_app(settings: Settings, *, sms: SmsSender | None = None) -> Litestar:
    onecard = OnecardPlugin(settings)
    app = Litestar(
        plugins=[
            CorePlugin(settings),
            OpsPlugin(),
            IdentityPlugin(settings, sms=sms),
            CredentialsPlugin(),
            AuditPlugin(),
            onecard,  # starts before the terminals, which settle offline rides through it
            TerminalsPlugin(settlement=onecard),
            PlatformPlugin(settings),
            WebPlugin(),
            ErrorResponsesPlugin(),  # documents every route's errors as problem+json
        ],
        # Litestar reads the body limit from its constructor only (a plugin's AppConfig value is ignored).
        request_max_body_size=settings.max_body_bytes,
        logging_config=None,  # server.observability configures JSON logs once per process
        openapi_config=_openapi_config(),
    )
    document_contracts(app, scan_contract)
    return app


def _openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="yima",
        version="0.1.0",
        description="yima (一码): one signed QR credential for Guangde residents; terminals; mini-apps.",
        use_handler_docstrings=True,
        openapi_router=Router(
            "/schema",
            route_handlers=[],
            opt=allow(PUBLIC),
            include_in_schema=False,
            response_headers=[ResponseHeader(name="content-security-policy", value=CONTENT_SECURITY_POLICY)],
        ),
        # One page from local assets (server/api_docs.py), the JSON document, and YAML; none of Litestar's
        # CDN-loading pages.
        render_plugins=[ApiDocsPage(), YamlRenderPlugin()],
        components=Components(
            security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")}
        ),
        security=[{"bearer": []}],
    )
