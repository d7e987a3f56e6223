"""The gRPC API (``har/v1/har.proto``): servicer, server, message conversion and TLS.

Inside this package ``import grpc`` is the gRPC library (imports are absolute).
"""
