"""Generated gRPC modules of the Open Inference Protocol; see ``grpc_predict_v2.proto``."""
