"""``lamina keys rotate``: a new master key, with no downtime.

1. The new key joins the key file as the active one (old keys stay).
2. One database transaction records it as active and re-wraps every data key under it. From
   then on no data key can be created under an old key (``datakeys.py``), and a running server
   that meets a row wrapped by the new key reloads the file and finds it.
3. Once no row uses an old key, the old keys leave the file.

Data keys themselves do not change, so ciphertext is not rewritten and servers' cached data keys
stay valid. A crash between steps leaves a file with extra keys, which the next rotation cleans.
"""

from __future__ import annotations

import secrets

from lamina.secrets.datakeys import DataKeyRow, SqlDataKeyStore
from lamina.secrets.envelope import unwrap_data_key, wrap_data_key
from lamina.secrets.keyring import (
    KEY_BYTES,
    KeyRingError,
    MasterKeyRing,
    new_key_id,
    write_ring,
)


def rotate(ring: MasterKeyRing, keys: SqlDataKeyStore) -> tuple[str, int]:
    """Rotate; returns (the new master key id, how many data keys were re-wrapped)."""
    ring.reload()
    old = {key_id: ring.key(key_id) for key_id in ring.ids()}
    new_id, new_key = new_key_id(), secrets.token_bytes(KEY_BYTES)
    write_ring(ring.path, {**old, new_id: new_key}, new_id)
    ring.reload()

    def rewrap(row: DataKeyRow, master: str) -> str:
        if row.master_key_id not in old:  # nothing is changed: the transaction rolls back
            raise KeyRingError(f"data key {row.id} is wrapped by master key "
                               f"{row.master_key_id}, which is not in {ring.path}")
        data_key = unwrap_data_key(old[row.master_key_id], row.id, row.wrapped)
        return wrap_data_key(new_key, row.id, data_key)

    count = keys.rewrap_all(new_id, rewrap)
    stranded = keys.masters_in_use() - {new_id}
    if stranded:  # cannot happen after step 2's transaction; never drop a key still in use
        raise RuntimeError(f"data keys still wrapped by {sorted(stranded)}")
    write_ring(ring.path, {new_id: new_key}, new_id)
    ring.reload()
    return new_id, count
