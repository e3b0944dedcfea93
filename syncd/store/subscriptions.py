"""Microsoft Graph change-notification subscriptions, one per staff calendar on a graph
source, so a restart neither loses them (notifications would stop) nor creates duplicates."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select

from syncd.store import schema as t
from syncd.store.common import Aggregate


@dataclass(frozen=True, slots=True)
class GraphSubscriptionRow:
    calendar: str
    subscription_id: str
    source: str
    locator_hash: str
    expires_at: datetime
    created_at: datetime


class Subscriptions(Aggregate):
    def graph_subscriptions(self) -> list[GraphSubscriptionRow]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.graph_subscriptions).order_by(t.graph_subscriptions.c.calendar)
            ).all()
        return [GraphSubscriptionRow(**r._mapping) for r in rows]

    def save_graph_subscription(self, row: GraphSubscriptionRow) -> None:
        """Record (or replace) the one subscription of ``row.calendar``."""
        with self.engine.begin() as conn:
            conn.execute(
                delete(t.graph_subscriptions).where(
                    (t.graph_subscriptions.c.calendar == row.calendar)
                    | (t.graph_subscriptions.c.subscription_id == row.subscription_id)
                )
            )
            conn.execute(insert(t.graph_subscriptions).values(**asdict(row)))

    def delete_graph_subscription(self, calendar: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                delete(t.graph_subscriptions).where(t.graph_subscriptions.c.calendar == calendar)
            )
