"""Exchange Server (EWS) through exchangelib: options, connection, sync, mapping, errors.

exchangelib is imported only inside functions, so loading the config never pulls it in.
"""

from syncd.sources.ews.options import EwsOptions
from syncd.sources.ews.source import EwsSource

__all__ = ["EwsOptions", "EwsSource"]
