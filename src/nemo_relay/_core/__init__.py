"""Private runtime of nemo_relay. The public modules are thin façades over these stages.

A managed call flows through the modules in this order, and each imports only modules above it:

  ① context      which scope stack is current; frames, isolation, thread binding
  ② registry     global and scope-local registrations, resolved into a cached per-frame view
  ③ ④ ⑥ chains   conditional guardrails, request intercepts, execution intercepts (managed calls)
  ⑤ ⑧ lifecycle  open/close scopes, emit marks and metrics, build immutable events
  ⑨ ⑩ dispatch   one daemon thread: deliver each event to its emission-time subscriber snapshot
  ⑪ exporters    subscribers that turn events into files and spans

Leaf modules used by every stage: types (enums, flags, JSON aliases), errors, ids (UUIDv7, time),
jsonconv (payload conversion), events, handles, metrics, propagation, aio (the sync/async seam),
oplog (operational logging).
"""
