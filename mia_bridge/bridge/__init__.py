"""The bridge: one small interface to run Exchange Online cmdlets, whatever the transport."""

from mia_bridge.bridge.backend import (
    CmdletCall,
    CmdletResult,
    ErrorInfo,
    ExoBackend,
    ProgressInfo,
    Secret,
)

__all__ = ["CmdletCall", "CmdletResult", "ErrorInfo", "ExoBackend", "ProgressInfo", "Secret"]
