"""Protocol adapters: a request body to :class:`~ctloop.serving.inputs.Inputs` (decode) and
:class:`~ctloop.serving.scoring.predict.Scored` to the protocol's answer (encode).

``v1`` (KServe v1 and ctloop's rows/columns), ``v2`` (Open Inference Protocol over
HTTP: JSON and the binary tensor extension) and ``grpc`` (the same protocol's
protobuf messages). No module here reads a socket or scores a model.
"""
