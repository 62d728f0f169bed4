"""Asynchronous invocation: the durable event queue, its dispatcher, retries and destinations.

An ``Event`` invoke is answered 202 only once its event is committed to the store
(``intake.py``); from then on the event is owned by the queue until its outcome is recorded.
The dispatcher (``dispatcher.py``) runs one lane per function with due events, at a bounded
share of the function's concurrency (``fairness.py``), so that synchronous callers always find
room. Each delivery (``delivery.py``) ends in exactly one settlement, committed atomically with
what it produces: deleted after success or a final failure together with the events for the
destinations and dead-letter target (``destinations.py``, ``records.py``), or rescheduled with
Lambda's backoff (``policy.py``). A crash loses nothing: leases of events in flight expire (or,
on the single-process SQLite store, are released at start) and those events run again.
"""
