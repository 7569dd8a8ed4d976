"""The peer API: the aiohttp server a node exposes to its quorum and the client it calls it with."""
