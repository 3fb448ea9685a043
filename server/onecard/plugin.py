"""Wires the one-card domain into the app: routes, the service (app.state.onecard) and its top-ups."""

from __future__ import annotations

from litestar import Controller, Litestar, get, post
from litestar.config.app import AppConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.params import FromPath
from litestar.plugins import InitPluginProtocol

from server.auth import allow
from server.auth.guards import PUBLIC
from server.cli_support import Commands
from server.db import Database
from server.errors import Conflict, NotFound, raises
from server.onecard.config import OnecardConfig
from server.onecard.controllers import (
    DeviceController,
    OnecardController,
    PaymentNotifyController,
    ReconciliationController,
)
from server.onecard.payments import simulator_repository
from server.onecard.payments.adapters import HttpPaymentProvider, LocalPaymentProvider
from server.onecard.payments.base import PaymentProvider
from server.onecard.payments.simulator import PaymentSimulator, SimError, SimOrder
from server.onecard.ports import RevocationSource, VerifiedResidents
from server.onecard.service import OnecardService
from server.onecard.topups.service import Topups
from server.plugins import Provides, StartOnce
from server.settings import Mode, Settings
from server.wire import Outbound, b64url_decode


def provide_onecard(state: State) -> OnecardService:
    return state.onecard  # type: ignore[no-any-return]


def provide_topups(state: State) -> Topups:
    return state.onecard_topups  # type: ignore[no-any-return]


class DevCashier(Outbound):
    """The development cashier: the order a top-up's `pay_url` names, and how to play the payer."""

    order_no: str
    amount_fen: int
    state: str
    pay: str
    """`POST` here to pay the order (the simulator then notifies this server)."""


class DevPaymentController(Controller):
    """Development only: the in-process payment simulator's cashier, and the payer."""

    path = "/v1/dev"
    tags = ["dev"]

    @get("/sim/cashier/{prepay_id:str}", opt=allow(PUBLIC) | raises(NotFound), operation_id="devCashier")
    async def cashier(self, prepay_id: FromPath[str], state: State) -> DevCashier:
        """Where a top-up's `pay_url` leads under `yima dev`: the order to pay."""
        order = await _local(state).cashier(prepay_id)
        if order is None:
            raise NotFound("No order has this prepay id")
        return DevCashier(
            order.order_no,
            order.amount_fen,
            order.state,
            f"{state.core.settings.base_url}/v1/dev/payments/{order.order_no}/pay",
        )

    @post(
        "/payments/{order_no:str}/pay",
        status_code=200,
        opt=allow(PUBLIC) | raises(NotFound, Conflict),
        operation_id="devPayTopup",
    )
    async def pay(self, order_no: FromPath[str], state: State) -> dict[str, list[str]]:
        """Pay a top-up order in the simulator; its notification is delivered within a second."""
        try:
            return {"notify_ids": await _local(state).pay(order_no)}
        except SimError as exc:
            raise (NotFound if exc.status == 404 else Conflict)(exc.message) from None


def _local(state: State) -> LocalPaymentProvider:
    provider = state.onecard.payments
    if not isinstance(provider, LocalPaymentProvider):
        raise NotFound()
    return provider


class _SimulatorOrdersInPostgres:
    """The development simulator's orders in the database every `yima` process of this data folder uses."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def load(self) -> list[SimOrder]:
        async with self._db.connection() as conn:
            return await simulator_repository.load_orders(conn)

    async def save(self, order: SimOrder) -> None:
        async with self._db.transaction() as conn:
            await simulator_repository.save_order(conn, order)


class OnecardPlugin(InitPluginProtocol):
    @staticmethod
    def add_cli_commands(commands: Commands) -> None:
        from server.onecard.cli import add_commands

        add_commands(commands)

    def __init__(
        self,
        settings: Settings,
        *,
        identity: Provides[VerifiedResidents],
        credentials: Provides[RevocationSource],
        config: OnecardConfig | None = None,
    ) -> None:
        self.settings = settings
        self.config = config or OnecardConfig.from_settings(settings)
        self.identity, self.credentials = identity, credentials
        """The plugins whose services answer the VerifiedResidents and RevocationPublisher ports."""
        self._loop_task: object | None = None
        self._started = StartOnce(self._start)

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.route_handlers.extend(
            [OnecardController, DeviceController, PaymentNotifyController, ReconciliationController]
        )
        if self.settings.mode is Mode.DEVELOPMENT:
            app_config.route_handlers.append(DevPaymentController)
        app_config.dependencies["onecard"] = Provide(provide_onecard, sync_to_thread=False)
        app_config.dependencies["topups"] = Provide(provide_topups, sync_to_thread=False)
        app_config.on_startup.append(self.started)
        app_config.on_shutdown.insert(0, self._stop)
        return app_config

    async def seed_demo(self, app: Litestar) -> None:
        """Demo resident: the issuer's record of their social security card and an open one-card, so the
        shell's one-card page shows a balance and a top-up at once."""
        from server.seed import DEMO_RESIDENT_CARD, DEMO_RESIDENT_ID, DEMO_RESIDENT_PHONE

        onecard = await self.started(app)
        residents = await self.identity.started(app)
        async with app.state.core.db.transaction() as conn:
            await onecard.record_issued_card(conn, DEMO_RESIDENT_ID, DEMO_RESIDENT_CARD)
            resident = await residents.account_id_for_phone(conn, DEMO_RESIDENT_PHONE, create=True)
            assert resident is not None  # created if absent
            await onecard.open_account(conn, resident, DEMO_RESIDENT_CARD)

    def _provider(self, db: Database) -> PaymentProvider:
        cfg = self.config
        if cfg.payment_provider_url:
            return HttpPaymentProvider(
                cfg.payment_provider_url,
                merchant_id=cfg.merchant_id,
                merchant_key=cfg.merchant_key,
                provider_public_key=b64url_decode(cfg.provider_public_key),
            )
        if self.settings.mode is Mode.PRODUCTION:
            raise RuntimeError(
                "onecard: production needs a payment provider URL (the simulator is for dev/test)"
            )
        simulator = PaymentSimulator(
            merchant_id=cfg.merchant_id,
            merchant_key=cfg.merchant_key,
            base_url=self.settings.base_url + "/v1/dev",
        )
        # In development the orders live in PostgreSQL: the `yima` commands (reconcile) see the server's payments.
        shared = _SimulatorOrdersInPostgres(db) if self.settings.mode is Mode.DEVELOPMENT else None
        return LocalPaymentProvider(simulator, shared)

    async def started(self, app: Litestar) -> OnecardService:
        """The one-card service (the platform's Payments port), started once."""
        return await self._started(app)

    async def _start(self, app: Litestar) -> OnecardService:
        import asyncio

        core = app.state.core
        service = OnecardService(
            self.config,
            core.db,
            core.cipher,
            core.keys,
            core.derived_keys.onecard_account_ref,
            self._provider(core.db),
            await self.identity.started(app),
            (await self.credentials.started(app)).revocations,
            notify_url=self.config.notify_url or self.settings.base_url + "/v1/payments/notify",
        )
        app.state.onecard = service
        app.state.onecard_topups = Topups(service, core.db)
        if self.settings.mode is Mode.DEVELOPMENT and isinstance(service.payments, LocalPaymentProvider):
            # `yima dev`: the in-process simulator delivers its notifications to this server over HTTP.
            self._loop_task = asyncio.create_task(service.payments.simulator.run_delivery_loop())
        return service

    async def _stop(self, app: Litestar) -> None:
        import asyncio
        import contextlib

        self._started.reset()
        task = self._loop_task
        if isinstance(task, asyncio.Task):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        service = getattr(app.state, "onecard", None)
        if service is not None:
            await service.payments.close()
