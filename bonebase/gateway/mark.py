"""The mark a gateway puts on each file it de-identified, so that the consortium can tell it
from an identified file: one value of De-identification Method (0012,0063), keyed by the
consortium secret (only a holder of the key can make it), bound to the file's pseudonymous
PatientID and SOP Instance UID."""

from __future__ import annotations

import hashlib
import hmac

PREFIX = "bonebase-gateway "


def gateway_mark(secret: bytes, site: str, patient_id: str, sop_instance_uid: str) -> str:
    """``"bonebase-gateway " + 32 hex`` of HMAC-SHA256(secret, "gateway-mark", site, ids)."""
    message = "\x1f".join(("gateway-mark", site, patient_id, sop_instance_uid)).encode()
    return PREFIX + hmac.new(secret, message, hashlib.sha256).hexdigest()[:32]


def is_marked(secret: bytes, site: str, patient_id: str, sop_instance_uid: str,
              methods: list[str]) -> bool:
    """Whether ``methods`` (the values of De-identification Method) hold a valid mark."""
    expected = gateway_mark(secret, site, patient_id, sop_instance_uid)
    return any(hmac.compare_digest(str(m).strip(), expected) for m in methods)
