"""Environment variables encrypted at rest, by envelope encryption as KMS does it.

* ``keyring.py``: the master keys, in a 0600 JSON file outside the database (the data dir's
  ``master.key`` or ``LAMINA_MASTER_KEY_FILE``). One is active; older ones stay only while a
  rotation moves data keys off them.
* ``datakeys.py``: one data key per function, stored in the database only *wrapped*
  (AES-256-GCM under a master key, with the key's id as associated data).
* ``envelope.py``: seals a function's variables with its data key (AES-256-GCM, the function
  name as associated data, so ciphertext cannot be moved to another function) and opens them;
  tampering fails authentication and raises ``DecryptionFailed``, never returns garbage.
* ``sealed_store.py``: a ``MetadataStore`` in front of the real one that seals on every write and
  opens on every read, so no plaintext value reaches the database (nor its WAL).
* ``rotate.py``: ``lamina keys rotate``: a new master key, every data key re-wrapped, the old
  master key dropped, while a server keeps running.
"""
