"""Fault injection for tests: :mod:`tests.faults.proxy` (see its docstring for the API)."""

from tests.faults.proxy import Drip, Fault, FaultProxy, Reset, Stall, Status, refused_port

__all__ = ["Drip", "Fault", "FaultProxy", "Reset", "Stall", "Status", "refused_port"]
