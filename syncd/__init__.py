"""syncd: watches staff calendars for home visits and keeps lone workers tracked."""

__version__ = "0.1.0"
