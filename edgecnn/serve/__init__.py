"""Tier 0 + ``[serve]``: serving models over HTTP with the Open Inference Protocol (KServe v2).

``protocol`` (request and response bodies, the binary tensor data extension; numpy only), ``batching``
(the dynamic batcher: bounded queue, max batch, max delay; asyncio, the model in a worker thread). The server
itself (issue 13) is being built on it.
"""
