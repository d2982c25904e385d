"""The services that ship with mcp-nats, one package each (each exports `plugin`; see responders/plugin.py)."""
