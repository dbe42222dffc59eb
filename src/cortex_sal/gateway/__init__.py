"""The network service: sensors over TCP with KEROS v2 into the shield (docs/gateway.md).

* :mod:`.connection`: one connection as a sans-IO machine, gateway side and sensor side;
* :mod:`.server`: the asyncio gateway (limits, deadlines, revocation, drain, subscribers);
* :mod:`.sensor`: the sensor client (pacing, reconnect with backoff and jitter);
* :mod:`.metrics`: the Prometheus metrics.
"""
