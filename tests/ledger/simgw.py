"""The paper gateway (albra.exchange.paper.PaperGateway over the simulated exchange core) with call recording and
two injectable faults, for ledger tests.

``lose_response`` lets the next placement of a client id reach the exchange but raises OutcomeUnknown (a timeout
after the order was accepted); ``lose_before`` raises it without placing (the request never arrived). Everything
else — order rules, reduce-only caps, algo triggers, fills, payload parsing — is the real paper gateway.
"""

from __future__ import annotations

from albra.exchange.errors import OutcomeUnknown
from albra.exchange.paper import PaperGateway
from albra.exchange.types import OrderRequest, OrderResult
from albra.sim.exchange import SimExchange


class SimGateway(PaperGateway):
    def __init__(self, sim: SimExchange, account: str) -> None:
        super().__init__(account, sim)
        self.sim = sim
        self.lose_response: set[str] = set()
        self.lose_before: set[str] = set()
        self.calls: list[tuple[str, str]] = []

    async def place_order(self, req: OrderRequest) -> OrderResult:
        self.calls.append(("place", req.client_id))
        if req.client_id in self.lose_before:
            self.lose_before.discard(req.client_id)
            raise OutcomeUnknown("timeout before the exchange saw it", client_id=req.client_id, is_algo=req.is_algo)
        res = await super().place_order(req)
        if req.client_id in self.lose_response:
            self.lose_response.discard(req.client_id)
            raise OutcomeUnknown("response lost", client_id=req.client_id, is_algo=req.is_algo)
        return res

    async def fetch_order(self, symbol: str, client_id: str, is_algo: bool) -> OrderResult | None:
        self.calls.append(("fetch", client_id))
        return await super().fetch_order(symbol, client_id, is_algo)

    async def cancel_order(self, symbol: str, client_id: str, is_algo: bool) -> OrderResult | None:
        self.calls.append(("cancel", client_id))
        return await super().cancel_order(symbol, client_id, is_algo)

    def open_algo_ids(self, symbol: str) -> list[str]:
        return [a.client_algo_id for a in self.sim.open_algos(self.account, symbol)]
