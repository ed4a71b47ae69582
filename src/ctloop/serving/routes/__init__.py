"""Endpoints: HTTP routes (v1, v2, admin, feedback, explain) and the gRPC servicer.

Each prediction route reads its body, decodes it with a protocol adapter
(:mod:`ctloop.serving.protocols`), and hands it to the data plane
(:func:`ctloop.serving.dataplane.run_prediction`), which scores, answers, logs
and counts in one place for every protocol.
"""
