"""Activation Gateway: one call to activate AEP audiences to email-marketing destinations."""

__version__ = "0.1.0"
