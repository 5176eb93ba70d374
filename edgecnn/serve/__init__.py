"""Tier 0 + ``[serve]``: serving models over HTTP with the Open Inference Protocol (KServe v2).

As the pipeline reads: ``protocol`` (infer request and response bodies with the binary tensor data
extension; numpy only), ``calls`` (model calls that can be stopped: the time limit, the watchdog, the model's
thread), ``batching`` (the dynamic batcher: bounded queue, max batch, max delay), ``models`` (a Predictor as the
server holds it: metadata, input checks, classify's uploads), ``bodies`` (request bodies within the limits),
``gate`` (token, access log, request metrics, faults in one line), ``metrics`` (Prometheus), ``app`` (the
routes), ``wire`` (the HTTP connection: the request head's limits), ``drain`` (stopping without a reset),
``server`` (socket, uvicorn, signals). ``edgecnn serve`` runs it.
"""
