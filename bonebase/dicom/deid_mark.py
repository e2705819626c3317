"""The mark a hospital gateway puts on each file it de-identified (issue #18).

A gateway de-identifies inside the hospital with the consortium's engine and key, so its files
arrive already pseudonymous. Central ingest must not de-identify them a second time (that would
hash the pseudonym and the UIDs again: another patient, another case), yet it must not trust a
file that merely says it was de-identified. The mark is one value of De-identification Method
(0012,0063), an HMAC under the consortium key bound to the site, the file's pseudonymous
PatientID and its SOP Instance UID: only a holder of the key can make it, and it does not carry
over to another file.
"""

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
