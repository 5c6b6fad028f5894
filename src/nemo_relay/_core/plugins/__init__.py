"""The plugin host behind ``nemo_relay.plugin``, one module per step of an activation.

  names       effective registration names: ``nemo-relay-plugin.v1.<kind>:<ordinal>:<local>``
  model       the plugin document: normalisation, typed parsing, policy merge, diagnostics, errors
  registry    kind -> plugin (lazy built-ins, Python plugins) and the validation algorithm
  context     the per-component registration context and its reverse-order rollback
  files       ``plugins.toml`` discovery and layering under the programmatic configuration
  activation  the serialized transactions: initialize / replace / restore / clear, and report()
  dynamic     manifest-backed (native/worker) plugin specs and host activation checks

This package's ``__init__`` imports nothing: ``runtime_registrations`` reads ``names`` on its own.
"""
