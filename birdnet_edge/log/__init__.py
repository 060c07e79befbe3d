"""The detection log: the record, the SQLite file (schema, writer, retention), its queries, the
MQTT outbox, and the feed the console and the publisher follow."""
