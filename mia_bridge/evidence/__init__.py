"""Evidence: raw records written and hashed first, the case manifest, and its verification."""

from mia_bridge.evidence.manifest import add_files, load_manifest, rehash
from mia_bridge.evidence.verify import VerifyReport, verify_case

__all__ = ["VerifyReport", "add_files", "load_manifest", "rehash", "verify_case"]
