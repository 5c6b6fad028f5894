"""ATIF v1.7 trajectories from lifecycle events.

``model`` holds the schema (dataclasses that serialise in the ATIF field order), ``extract`` reads
messages, tool calls and usage out of provider payloads, ``steps`` maps an ordered event list onto
steps (with nested agents as embedded subagent trajectories), ``exporter`` is the public standalone
``AtifExporter``, ``dispatcher`` splits the event stream into one trajectory per top-level agent or
turn for the observability plugin, and ``storage`` delivers finished trajectories (local file, HTTP,
S3) from a bounded worker thread.
"""
