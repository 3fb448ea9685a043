"""create_app(settings) -> Litestar: the list of domain plugins, nothing else."""

from __future__ import annotations

from litestar import Litestar, Router
from litestar.datastructures import ResponseHeader
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import YamlRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins import PluginProtocol

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
from server.terminals.controllers.scans import scan_contract
from server.terminals.plugin import TerminalsPlugin
from server.web.plugin import WebPlugin

# The plugins, in the one order both the app and `yima` use: create_app starts them in it, and `yima` asks those
# with `add_cli_commands` for their commands (server/cli_support.py) in it (that of `yima --help`). A plugin
# needing another's service takes that plugin (server/plugins.py), so this order is free for every domain; the
# core comes first (every plugin reads `app.state.core`), and the OpenAPI error documentation last.
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
    identity = IdentityPlugin(settings, sms=sms)
    credentials = CredentialsPlugin(identity=identity)
    onecard = OnecardPlugin(settings, identity=identity, credentials=credentials)
    platform = PlatformPlugin(settings, identity=identity, credentials=credentials, onecard=onecard)
    made: list[PluginProtocol] = [  # in any order: PLUGIN_TYPES orders them
        CorePlugin(settings, role_record=identity.granted_roles),
        OpsPlugin(),
        identity,
        credentials,
        AuditPlugin(),
        onecard,
        TerminalsPlugin(
            identity=identity,
            credentials=credentials,
            settlement=onecard,
            documents=platform.documents,
            lists=platform.lists,
            events=platform.sink,
        ),
        platform,
        WebPlugin(),
        ErrorResponsesPlugin(),  # documents every route's errors as problem+json
    ]
    by_type = {type(plugin): plugin for plugin in made}
    assert set(by_type) == set(PLUGIN_TYPES), "list a new plugin in PLUGIN_TYPES and here"
    app = Litestar(
        plugins=[by_type[kind] for kind in PLUGIN_TYPES],
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
