"""Tier 0 + ``[ray]``: serving and batch prediction beyond one machine, on Ray (Ray Serve, Ray Data).

As the pipeline reads: ``ray_session`` (the cluster joined, or started on 127.0.0.1 for the command),
``proxy`` (Ray's own failures answered as edgecnn's retryable 503 in Serve's proxy), ``serving`` (the
single-process server as a Ray Serve deployment; ``build_app`` for ``serve run``), ``ray_batching`` (Ray
Serve's ``@serve.batch`` behind the batcher's interface), ``serve_run`` (`edgecnn serve
--engine ray`: deploy, wait, drain), ``batch_predict`` (`edgecnn predict --engine ray`: Ray Data actors, one
Predictor each). Ray is imported only inside these functions, never by the rest of edgecnn.
"""
