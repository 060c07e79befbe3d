"""MQTT: the messages, Home Assistant discovery and the publisher."""
