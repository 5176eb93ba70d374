"""Tier 0 + ``[serve]``: serving models over HTTP with the Open Inference Protocol (KServe v2).

As the pipeline reads: ``protocol`` (infer request and response bodies with the binary tensor data
extension; numpy only), ``batching`` (the dynamic batcher: bounded queue, max batch, max delay, the model in a
worker thread), ``models`` (a Predictor as the server holds it: metadata, input checks, classify's uploads),
``bodies`` (request bodies within the limits), ``gate`` (token, access log, request metrics), ``metrics``
(Prometheus), ``app`` (the routes), ``server`` (socket, uvicorn, signals). ``edgecnn serve`` runs it.
"""
